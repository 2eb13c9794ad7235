"""The one place that picks the event loop: uvloop when installed, else asyncio's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` to completion on the best available loop."""
    return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": has_uvloop()})
