"""Capacity wakes its waiters on release only when there are some (capacity.py): a
release with nobody waiting must not lose the wake-up of a later waiter."""

from __future__ import annotations

import anyio

from relier.runtime.capacity import Capacity


async def test_waiters_wake_on_release_and_a_quiet_release_loses_nothing() -> None:
    capacity = Capacity(2)
    capacity.take()
    capacity.take()
    capacity.release()  # nobody waits: nothing to wake
    assert await capacity.wait_free() == 1
    capacity.take()
    woke: list[int] = []

    async def waiter() -> None:
        woke.append(await capacity.wait_free())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            tg.start_soon(capacity.wait_idle)
            await anyio.sleep(0.01)
            assert woke == []
            capacity.release()
            await anyio.sleep(0.01)
            assert woke == [1]
            capacity.release()  # the idle waiter ends the group
    assert capacity.in_use == 0
