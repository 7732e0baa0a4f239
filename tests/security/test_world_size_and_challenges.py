"""Item 13: world size is fixed by the operator, and Challenge is bounded per node.

Without ``--world-size`` the first rank to register decided how many ranks the
job had: a job of 8 could be recorded complete with 1. A node could make the
coordinator keep thousands of nonces.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.collect._merge import Limits
from slsa_dist.errors import SenderError

from support.background import signing_key
from support.sim import Cluster, done


def test_the_coordinator_will_not_start_without_a_world_size(tmp_path: Path) -> None:
    key, _ = signing_key(tmp_path)
    done_ = subprocess.run(
        [sys.executable, "-m", "slsa_dist.cli", "coordinator", "--job-id", "j", "--listen",
         "127.0.0.1:0", "--key", str(key), "--out", str(tmp_path / "out"), "--plaintext",
         "--idle-timeout", "1"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done_.returncode == 2
    assert "the following arguments are required: --world-size" in done_.stderr


def test_a_rank_cannot_shrink_the_job_to_itself() -> None:
    cluster = Cluster(world_size=8)
    with pytest.raises(SenderError, match="world size: expected 8, found 1"):
        cluster.rank(0, world_size=1)
    cluster.rank(0).report(done())
    assert cluster.finalize().completeness().missing_ranks == (1, 2, 3, 4, 5, 6, 7)  # type: ignore[union-attr]


def test_challenges_per_node_are_bounded() -> None:
    cluster = Cluster(world_size=1, limits=Limits(max_challenges_per_node=4))
    cluster.node("node-0")
    for _ in range(4):
        cluster.challenge("node-0")
    with pytest.raises(SenderError, match="challenge: expected at most 4 per node") as refused:
        cluster.challenge("node-0")
    assert refused.value.code == "RESOURCE_EXHAUSTED"
    assert len(cluster.state._state.nodes["node-0"].nonces) == 4
