"""A node dies mid-training: torchrun elastic (``--nnodes 2:3``, ``--max-restarts``)
goes on with the two survivors, and the provenance says exactly what happened."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle

from support.cluster import Cluster
from support.clusterjob import ClusterJob

pytestmark = [pytest.mark.cluster, pytest.mark.torchrun, pytest.mark.tpm, pytest.mark.timeout(300)]

TRAIN = Path(__file__).parents[2] / "assets" / "cluster_train.py"


@pytest.fixture(scope="module")
def node_died(cluster: Cluster, cluster_key: Path) -> Iterator[ClusterJob]:
    job = ClusterJob(cluster, "node-died", cluster.workdir / "node-died", cluster_key,
                     world_size="4:6", port=50081, rdzv_port=29581)
    job.issue(cluster.nodes)
    job.start_coordinator()
    for node in cluster.nodes:
        job.start_node(node, TRAIN, ["--data", str(cluster.workdir / "data"), "--out",
                                     str(job.root / "train"), "--epochs", "6",
                                     "--step-seconds", "0.2"],
                       nnodes="2:3", max_restarts=2,
                       rdzv_conf="join_timeout=90,last_call_timeout=4,close_timeout=10")
    second = job.root / "train" / "epoch-1" / ".metadata"
    deadline = time.monotonic() + 120
    while not second.exists():  # two epochs done by 6 ranks on 3 nodes
        assert time.monotonic() < deadline, job.logs()
        assert all(p.poll() is None for p in job.launchers.values()), job.logs()
        time.sleep(0.1)
    dead = cluster.nodes[2]
    cluster.kill(dead)
    try:
        survivors = {n: job.launchers.pop(n) for n in ("node0", "node1")}
        killed = job.launchers.pop(dead.name)
        killed.wait(10)
        job.launchers.update(survivors)
        codes = job.wait(timeout=200)
        assert codes == {"node0": 0, "node1": 0, "coordinator": 0}, job.logs()
        yield job
    finally:
        cluster.revive(dead)  # the rest of the session gets its third node back


def provenance_of(job: ClusterJob) -> Provenance:
    (envelope,) = read_bundle(job.bundle)
    return Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


def test_membership_per_attempt_and_the_node_that_left(node_died: ClusterJob) -> None:
    completeness = provenance_of(node_died).completeness()
    assert completeness is not None
    attempts = [dict(a) for a in completeness.attempts]
    assert [(a["attempt"], a["worldSize"], sorted(a["nodes"])) for a in attempts] == [
        (0, 6, ["node0", "node1", "node2"]), (1, 4, ["node0", "node1"])]
    # the survivors' launchers restarted their workers; node2 was never heard from again
    assert attempts[0]["nodes"] == {"node0": "RESTARTED", "node1": "RESTARTED",
                                    "node2": "NO_FINAL_REPORT"}
    assert attempts[1]["nodes"] == {"node0": "SUCCEEDED", "node1": "SUCCEEDED"}
    assert attempts[1]["ranksSucceeded"] == 4
    (departed,) = completeness.departed_nodes
    assert departed.startswith("node2: last in attempt 0")
    assert completeness.complete, completeness.problems


def test_the_lost_nodes_partial_work_and_evidence_are_kept(node_died: ClusterJob) -> None:
    provenance = provenance_of(node_died)
    ranks = {r.rank: r for r in provenance.rank_records()}
    assert sorted(ranks) == list(range(6))
    for lost in (4, 5):  # ranks of node2, in attempt 0 only: what they read until it died
        assert [(a.attempt, a.node, a.state) for a in ranks[lost].attempts] == [
            (0, "node2", "NO_COMPLETION_REPORTED")]
        assert ranks[lost].samples > 0
        assert {f.artifact.rsplit("/", 1)[-1] for f in ranks[lost].files} >= {"epoch-0"}
    for survivor in range(4):
        assert [a.attempt for a in ranks[survivor].attempts] == [0, 1]
        assert ranks[survivor].completed
    nodes = {n.node: n for n in provenance.node_records()}
    (tpm,) = [e for e in nodes["node2"].evidence if e.kind == "tpm"]
    assert tpm.status == "verified"
    assert provenance.world_size == 4
    assert provenance.external_parameters["worldSizeRange"] == [4, 6]


def test_verify_passes_and_names_the_node_that_left(node_died: ClusterJob) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "slsa_dist.cli", "verify", str(node_died.bundle),
         "--key", str(node_died.key.with_suffix(".pub")),
         "--artifact", str(node_died.root / "train" / "model.pt"),
         "--require-attestation", "tpm", "--trusted-aks",
         str(node_died.cluster.trusted_aks())],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "node2: last in attempt 0" in done.stdout + done.stderr
