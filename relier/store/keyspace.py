"""The one walk over the whole keyspace (SCAN) in Relier.

Every reader that must find keys by name rather than through a set or hash Relier keeps
(today: stored results by id prefix, for ``relier inspect task 3f2a``) goes through
:func:`scan_sync`. SCAN walks one server's keyspace; on a Redis Cluster each master
holds only its own slots, and redis-py's cluster ``scan_iter`` walks every primary in
turn, so the same call covers both (``tests/test_cluster.py`` finds a task by id prefix
on a cluster). Keep it the only SCAN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from relier.store.broker import as_bytes
from relier.store.clients import SyncClient

#: Keys SCAN reads per round trip.
SCAN_COUNT: Final = 1000
#: Glob characters that SCAN's MATCH would interpret in a literal.
_GLOB: Final = re.compile(r"([*?\[\]\\])")


def scan_sync(client: SyncClient, *literals: str, count: int = SCAN_COUNT) -> Iterator[str]:
    """Every key that starts with the concatenation of ``literals`` (taken literally:
    glob characters are escaped), in SCAN's order; a key name that is not UTF-8 is
    decoded with replacement characters."""
    pattern = "".join(_GLOB.sub(r"\\\1", text) for text in literals) + "*"
    for key in client.scan_iter(match=pattern, count=count):
        yield as_bytes(key).decode(errors="replace")
