"""Named distributed locks with fencing tokens: ``async with app.lock("name", ttl=30)``.

A lock is a lease in Redis, shared by every process that uses the same Redis. Taking it
hands out a *fencing token*, a number larger than any token the lock gave before, kept
as ``lock.token``. Release and extend are compare-and-delete / compare-and-expire
scripts: only the holder whose lease is still current can do either.

A lease can run out while its holder still works (a long GC pause, a stalled loop, a
network partition); then another process may take the lock. Three things tell you:

* ``lock.token``: pass it to the resource you protect, and have the resource refuse a
  token lower than the highest it has seen (a stale holder is then stopped there);
* ``lock.remaining`` (local, conservative estimate) and ``lock.owned()`` /
  ``await lock.aowned()`` (asks Redis) before an irreversible step;
* leaving the ``with`` block, or ``release()``/``extend()``, raises :class:`LockLost` if
  the lease had already gone, so the loss is never silent.

Waiting for a held lock does not poll: a waiter subscribes to the lock's release channel
and sleeps until a release is announced or the holder's lease is due to run out.
"""

from __future__ import annotations

import logging
import secrets
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from relier.errors import LockLost, LockTimeout
from relier.store import locks
from relier.store.runner import Op, perform, perform_sync

if TYPE_CHECKING:
    from relier.app import App
    from relier.store.broker import Broker

log = logging.getLogger("relier.lock")

#: Longest single sleep of a waiter between two attempts (a lost release message, or a
#: lock whose TTL was removed by hand, must not leave a waiter asleep for ever).
MAX_WAIT_S: Final = 5.0


class Lock:
    """A named lock. Make one with :meth:`relier.App.lock`.

    ``async with lock:`` / ``with lock:`` take it (waiting up to ``timeout`` seconds, for
    ever when ``None``, a single try when ``0``) and release it on the way out. The
    methods ``acquire``/``release``/``extend``/``owned`` are blocking; the ``a``-prefixed
    ones are their async twins. One Lock object is one holder: do not share it between
    concurrent tasks (make one per task; they then contend like separate processes).
    """

    def __init__(
        self, app: App, name: str, ttl: float, *, timeout: float | None = None,
        holder: str | None = None,
    ) -> None:
        if not name:
            raise ValueError("a lock needs a non-empty name")
        if ttl <= 0:
            raise ValueError(f"lock {name!r}: ttl must be positive, got {ttl!r}")
        if timeout is not None and timeout < 0:
            raise ValueError(f"lock {name!r}: timeout must be >= 0 or None, got {timeout!r}")
        self._app = app
        self.name = name
        self.ttl = ttl
        self.timeout = timeout
        if holder is not None and (not holder or " " in holder):
            raise ValueError(f"lock {name!r}: holder must be non-empty without spaces")
        self._holder = holder or secrets.token_hex(8)
        #: The fencing token of the current hold; ``None`` while not held.
        self.token: int | None = None
        self._lease_ends = 0.0

    def __repr__(self) -> str:
        return f"<Lock {self.name!r} token={self.token}>"

    @property
    def _value(self) -> str:
        return f"{self._holder} {self.token}"

    @property
    def value(self) -> str:
        """``"<holder> <token>"``: what the lock key holds while this hold is current (a
        script that must run only for the current holder compares against it)."""
        return self._value

    @property
    def remaining(self) -> float:
        """Seconds the lease has left by this process's clock (0.0 when not held).

        Measured from just before the acquire (or extend) was sent, so it errs short.
        """
        if self.token is None:
            return 0.0
        return max(0.0, self._lease_ends - time.monotonic())

    # -- async -----------------------------------------------------------------------

    async def aacquire(self) -> int:
        """Take the lock, waiting as ``timeout`` allows; returns the fencing token."""
        broker = self._app.broker()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        wait = await self._atry(broker)
        if wait is None:
            return self._token()
        if self.timeout == 0:
            raise LockTimeout(self.name, 0.0)
        async with locks.watch_release(broker.client, self.name) as released:
            # Subscribe first, then try again: a release between the two cannot be missed.
            while (wait := await self._atry(broker)) is not None:
                await released.next(self._pause(wait, deadline))
        return self._token()

    async def arelease(self) -> None:
        """Release the lock; raises :class:`LockLost` if the lease had already gone."""
        token = self._held()
        self.token = None
        release = locks.release(name=self.name, value=f"{self._holder} {token}")
        if not await perform(self._app.broker().client, release):
            raise LockLost(self.name, token)

    async def aextend(self, ttl: float | None = None) -> None:
        """Restart the lease at ``ttl`` seconds (default: the lock's ``ttl``) from now.

        Raises :class:`LockLost` (and forgets the token) if the lease had already gone.
        """
        ttl = self.ttl if ttl is None else ttl
        token = self._held()
        started = time.monotonic()
        if not await perform(self._app.broker().client, self._extend_op(ttl)):
            self.token = None
            raise LockLost(self.name, token)
        self._lease_ends = started + ttl

    async def aowned(self) -> bool:
        """Whether this holder's lease is still the current one (asks Redis)."""
        if self.token is None:
            return False
        return await locks.holder(self._app.broker().client, self.name) == self._value

    async def __aenter__(self) -> Lock:
        await self.aacquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.arelease()
        except LockLost:
            if exc is None:
                raise
            log.warning("lock %r was lost before the failing block released it", self.name)

    async def _atry(self, broker: Broker) -> float | None:
        started = time.monotonic()
        return self._taken(await perform(broker.client, self._acquire_op()), started)

    # -- blocking --------------------------------------------------------------------

    def acquire(self) -> int:
        """Take the lock, waiting as ``timeout`` allows; returns the fencing token."""
        client = self._app.sync_client()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        wait = self._try(client)
        if wait is None:
            return self._token()
        if self.timeout == 0:
            raise LockTimeout(self.name, 0.0)
        with locks.watch_release_sync(client, self.name) as released:
            while (wait := self._try(client)) is not None:
                released.next(self._pause(wait, deadline))
        return self._token()

    def release(self) -> None:
        """Release the lock; raises :class:`LockLost` if the lease had already gone."""
        token = self._held()
        self.token = None
        release = locks.release(name=self.name, value=f"{self._holder} {token}")
        if not perform_sync(self._app.sync_client(), release):
            raise LockLost(self.name, token)

    def extend(self, ttl: float | None = None) -> None:
        """Restart the lease at ``ttl`` seconds (default: the lock's ``ttl``) from now.

        Raises :class:`LockLost` (and forgets the token) if the lease had already gone.
        """
        ttl = self.ttl if ttl is None else ttl
        token = self._held()
        started = time.monotonic()
        if not perform_sync(self._app.sync_client(), self._extend_op(ttl)):
            self.token = None
            raise LockLost(self.name, token)
        self._lease_ends = started + ttl

    def owned(self) -> bool:
        """Whether this holder's lease is still the current one (asks Redis)."""
        if self.token is None:
            return False
        return locks.holder_sync(self._app.sync_client(), self.name) == self._value

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.release()
        except LockLost:
            if exc is None:
                raise
            log.warning("lock %r was lost before the failing block released it", self.name)

    def _try(self, client: Any) -> float | None:
        started = time.monotonic()
        return self._taken(perform_sync(client, self._acquire_op()), started)

    # -- shared ----------------------------------------------------------------------

    def _acquire_op(self) -> Op[locks.Attempt]:
        if self.token is not None:
            raise RuntimeError(f"lock {self.name!r} is already held by this Lock object")
        return locks.acquire(name=self.name, holder=self._holder, ttl_ms=_ms(self.ttl))

    def _extend_op(self, ttl: float) -> Op[bool]:
        if ttl <= 0:
            raise ValueError(f"lock {self.name!r}: ttl must be positive, got {ttl!r}")
        return locks.extend(name=self.name, value=self._value, ttl_ms=_ms(ttl))

    def _taken(self, attempt: locks.Attempt, started: float) -> float | None:
        """None when the acquire took the lock (now held), else seconds the holder has left."""
        if attempt.token:
            self.token = attempt.token
            self._lease_ends = started + self.ttl
            return None
        # < 0: the key vanished in between (-2) or has no TTL (-1): look again soon.
        return attempt.holder_left_ms / 1000 if attempt.holder_left_ms >= 0 else 0.05

    def _pause(self, holder_left: float, deadline: float | None) -> float:
        """How long to sleep before the next try; raises once the deadline has passed."""
        pause = min(holder_left, MAX_WAIT_S)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(self.name, self.timeout or 0.0)
            pause = min(pause, left)
        # A few ms past the expiry, so the next try finds the key gone.
        return pause + 0.005

    def _token(self) -> int:
        assert self.token is not None
        return self.token

    def _held(self) -> int:
        if self.token is None:
            raise RuntimeError(f"lock {self.name!r} is not held by this Lock object")
        return self.token


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
