"""The only code that talks to Redis.

Everything Relier reads or writes in Redis goes through this package: the key names
(:mod:`~relier.store.keys`), the Lua scripts (``lua/``, loaded by
:mod:`~relier.store.scripts`), the one way of running them (:mod:`~relier.store.runner`:
by SHA, async or blocking, loaded again after ``NOSCRIPT``), the typed calls built on
them, and the translation of redis-py's errors into Relier's own
(:mod:`~relier.store.errors`). Nothing outside it imports ``redis``, imports
:mod:`~relier.store.keys` or :mod:`~relier.store.scripts`, or sends a command on a
client it holds: it calls the typed functions here (``tests/test_layers.py`` checks all
three). The same calls run on one server, behind Sentinel, or on a Redis Cluster
(:mod:`~relier.store.cluster`; a settle's writes beyond its queue's slot go through
:mod:`~relier.store.outbox`).
"""
