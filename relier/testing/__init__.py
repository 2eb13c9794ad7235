"""``relier.testing``: test your tasks against a real Redis and a real worker.

A pytest plugin, opt-in. Enable it with ``pytest_plugins = ["relier.testing"]`` in your
``conftest.py``, ``-p relier.testing`` on the command line, or ``relier_fixtures = true``
in your pytest configuration. Fixtures (``relier/testing/fixtures.py``): ``relier_server``,
``relier_redis_url``, ``relier_app``, ``relier_worker``. Guide: docs/testing.md.

Importing this package stays cheap (the entry point imports it in every pytest run):
the fixtures load only when pytest registers it as a plugin, through ``pytest_plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relier.testing.harness import AsyncTestWorker, DrainTimeout, SyncTestWorker

pytest_plugins = ["relier.testing.fixtures"]

__all__ = ["AsyncTestWorker", "DrainTimeout", "SyncTestWorker"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from relier.testing import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'relier.testing' has no attribute {name!r}")
