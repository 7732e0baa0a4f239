"""A partition: one node loses its link to the coordinator (not to its peers) for 20 s
while training goes on. Its events wait in its agents and spool, arrive once the link
is back, and the bundle equals that of the same job run without the partition."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from slsa_dist._pb.v1 import journal_pb2
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle

from support.cluster import Cluster
from support.clusterjob import ClusterJob

pytestmark = [pytest.mark.cluster, pytest.mark.torchrun, pytest.mark.timeout(300)]

TRAIN = Path(__file__).parents[2] / "assets" / "cluster_train.py"
CUT_SECONDS = 20.0


def run(cluster: Cluster, key: Path, job_id: str, port: int, *,
        cut: bool) -> tuple[ClusterJob, tuple[int, int]]:
    job = ClusterJob(cluster, job_id, cluster.workdir / job_id, key, world_size=6, port=port,
                     rdzv_port=port - 20000)
    job.issue(cluster.nodes)
    job.start_coordinator()
    for node in cluster.nodes:
        job.start_node(node, TRAIN, ["--data", str(cluster.workdir / "data"), "--out",
                                     str(job.root / "train"), "--epochs", "10",
                                     "--step-seconds", "0.25"], nnodes="3")
    if cut:
        # training is under way once the first checkpoint is complete
        first = job.root / "train" / "epoch-0" / ".metadata"
        deadline = time.monotonic() + 120
        while not first.exists():
            assert time.monotonic() < deadline, job.logs()
            assert all(p.poll() is None for p in job.launchers.values()), job.logs()
            time.sleep(0.1)
        cluster.cut(cluster.nodes[1], cluster.coordinator)
        window = (time.time_ns(), 0)
        try:
            time.sleep(CUT_SECONDS)
            # node1 still trains with its peers: the job has not ended, and the
            # coordinator cannot have finished without node1's ranks
            assert job.coordinator is not None
            assert job.coordinator.poll() is None, job.logs()
        finally:
            cluster.heal(cluster.nodes[1], cluster.coordinator)
            window = (window[0], time.time_ns())
    codes = job.wait(timeout=200)
    assert codes == {"node0": 0, "node1": 0, "node2": 0, "coordinator": 0}, job.logs()
    if cut:
        print(f"partition: bundle {(time.time_ns() - window[1]) / 1e9:.1f} s after the heal")
    return job, (window if cut else (0, 0))


@pytest.fixture(scope="module")
def steady(cluster: Cluster, cluster_key: Path) -> ClusterJob:
    return run(cluster, cluster_key, "steady", 50071, cut=False)[0]


@pytest.fixture(scope="module")
def partitioned(cluster: Cluster, cluster_key: Path) -> tuple[ClusterJob, tuple[int, int]]:
    return run(cluster, cluster_key, "partitioned", 50072, cut=True)


def provenance_of(job: ClusterJob) -> Provenance:
    (envelope,) = read_bundle(job.bundle)
    return Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


def essentials(job: ClusterJob) -> dict[str, Any]:
    """What a job's bundle says happened, without timing: per rank its node, state,
    samples, shards read (with index digests) and files written (with digests); the
    nodes' attempts; the subjects; completeness. DCP's ``.metadata`` holds the
    checkpoint's own path and a random save id, so it differs between any two runs:
    it is compared by name, and every data file by digest."""
    provenance = provenance_of(job)
    ranks = {}
    for record in provenance.rank_records():
        ranks[record.rank] = {
            "node": record.node, "completed": record.completed, "samples": record.samples,
            "attempts": [(a.attempt, a.node, a.state, a.exit_code) for a in record.attempts],
            "shards": sorted((s.name, s.digest["sha256"], s.samples, s.index_digest, s.epochs)
                             for s in record.shards or ()),
            "files": sorted((f.artifact.split("/", 1)[-1], f.path,
                             "" if f.path == ".metadata" else f.digest) for f in record.files),
        }
    nodes = {n.node: [(a.attempt, a.ranks, a.state, dict(a.exit_codes)) for a in n.attempts]
             for n in provenance.node_records()}
    subjects = {s.name.split("/", 1)[-1]: s.digest for s in provenance.statement.subjects
                if s.name.endswith(".pt")}
    completeness = provenance.completeness()
    assert completeness is not None
    return {"ranks": ranks, "nodes": nodes, "subjects": subjects,
            "complete": completeness.complete, "problems": completeness.problems}


def accepted_from(job: ClusterJob, ranks: list[int]) -> list[int]:
    """When the coordinator journaled each batch from ``ranks`` (ns since the epoch)."""
    senders = tuple(f"rank/{r}/" for r in ranks)
    with sqlite3.connect(job.root / "out" / f"{job.job_id}.journal.sqlite") as db:
        rows = db.execute("SELECT data FROM entries ORDER BY id").fetchall()
    entries = [journal_pb2.JournalEntry.FromString(bytes(data)) for (data,) in rows]
    return [e.time_unix_nanos for e in entries
            if e.WhichOneof("entry") == "batch" and e.batch.sender.startswith(senders)]


def test_a_partitioned_node_reports_everything_once_the_link_is_back(
        partitioned: tuple[ClusterJob, tuple[int, int]]) -> None:
    job, (cut, healed) = partitioned
    view = essentials(job)
    assert view["complete"], view["problems"]
    node1 = [r for r, record in view["ranks"].items() if record["node"] == "node1"]
    assert len(node1) == 2
    assert all(view["ranks"][r]["samples"] > 0 and view["ranks"][r]["files"] for r in node1)
    # while cut off, nothing of node1's arrived; after, the rest of its events did
    times = accepted_from(job, node1)
    assert not [t for t in times if cut + 1e9 < t < healed]
    assert [t for t in times if t >= healed]


def test_the_bundle_equals_that_of_the_same_job_without_the_partition(
        steady: ClusterJob, partitioned: tuple[ClusterJob, tuple[int, int]]) -> None:
    assert essentials(partitioned[0]) == essentials(steady)
