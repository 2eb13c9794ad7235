"""Compatibility alias: the broker moved into the store, :mod:`relier.store.broker`.

Kept so that code written against ``relier.broker`` still imports; new code imports
from ``relier.store``.
"""

from relier.store.broker import *  # noqa: F403
from relier.store.broker import __all__ as __all__
