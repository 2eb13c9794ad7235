"""Compatibility alias: key names moved to :mod:`relier.store.keys`.

Kept only so that code written before the store package existed (branches in flight,
user scripts) still imports; new code imports ``relier.store.keys``. The layering test
lists this module as the one allowed upward import.
"""

from relier.store.keys import *  # noqa: F403
