"""The one-node-against-a-cluster benchmark's quick mode, end to end, with tiny sizes.

It runs as a user would (`python -m benchmarks.cluster --quick`): its own server and
3-master cluster, real worker processes, the table on stdout and the JSON. No figure is
compared with a speed: the machine may be busy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ("one node", "3-shard cluster")


@pytest.mark.timeout(90)  # two worker start-ups and a cluster on a machine that may be busy
def test_quick_run_measures_one_node_and_the_cluster(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--quick", "--n", "200", "--push-n", "100",
         "--bulk-n", "500", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = {name: line for line in done.stdout.splitlines()
            for name in TOPOLOGIES if line.startswith(f"│ {name} ")}
    assert list(rows) == list(TOPOLOGIES), done.stdout
    for line in rows.values():  # drain, push, push_many: each a positive rate
        rates = [float(r.replace(",", "")) for r in re.findall(r"([\d,.]+)/s", line)]
        assert len(rates) == 3 and all(rate > 0 for rate in rates), line

    found = json.loads(out.read_text())
    assert [t["topology"] for t in found["results"]] == list(TOPOLOGIES)
    for topology in found["results"]:
        assert set(topology["rates"]) == {"drain", "push", "push_many"}
        assert all(rate > 0 for rate in topology["rates"].values())
        [drain] = topology["runs"]["drain"]
        assert drain["cores"] > 0 and drain["limit"]  # the workers' CPU was counted
    assert found["results"][1]["servers"] == 3
    assert len(found["results"][1]["runs"]["drain"][0]["server_cores"]) == 3
    assert found["meta"]["sizes"] == {"per_queue": 200, "push": 100, "bulk": 500}
