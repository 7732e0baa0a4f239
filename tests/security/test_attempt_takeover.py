"""Issue 25 F1: one node cannot open an attempt alone and end the job with it.

With its own valid certificate, node A registered every rank for a new attempt
under itself, reported a final checkpoint and completed, while node B was still
training in the attempt before: the coordinator finalized, the bundle was
"complete" and a backdoored model verified (only a "nodes left the job" warning).

Attempts belong to the launchers: the nodes of the previous attempt must report
it ended before a later one judges the job, a node heard from after the final
attempt began is not departed, and in a job whose world size is fixed a departed
node fails the job (and verify).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import VerificationFailed, verify_bundle

from support.sim import Cluster, done, launched, shard, signed, written


def _takeover() -> Cluster:
    cluster = Cluster(world_size=2)
    node_a, node_b = cluster.node("node-a"), cluster.node("node-b")
    node_a.report(launched(0, [0], "STARTED"))
    node_b.report(launched(0, [1], "STARTED"))
    cluster.rank(0, node="node-a").report(shard("data-0"))
    honest = cluster.rank(1, node="node-b")
    honest.report(shard("data-1"))
    # Node A (its certificate may register ranks under node A) opens attempt 1 alone,
    # lists every rank as its own, writes the final model and ends the job.
    node_a.report(launched(0, [0], "RESTARTED"), launched(1, [0, 1], "STARTED"))
    for rank in (0, 1):
        cluster.rank(rank, attempt=1, node="node-a", pid=666).report(
            written("model", f"w{rank}.bin", role=pb.FINAL), done())
    node_a.report(launched(1, [0, 1], "SUCCEEDED", r0=0, r1=0))
    honest.report(shard("data-1", epoch=1))  # node B is still training attempt 0
    return cluster


def test_the_job_is_not_over_while_a_node_of_the_previous_attempt_still_runs() -> None:
    cluster = _takeover()
    assert cluster.state.all_ranks_complete()  # what node A made it look like
    assert not cluster.state.nodes_finished()  # node B never said attempt 0 ended


def test_a_node_opening_an_attempt_alone_leaves_the_job_incomplete(tmp_path: Path) -> None:
    cluster = _takeover()
    signer = Signer.generate()
    bundle = signed(cluster, tmp_path / "out", signer)
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(bundle, keys=[signer.public()])
    detail = " ".join(c.detail for c in failed.value.checks if not c.ok)
    assert "node node-b: last in attempt 0 (STARTED), not in the final attempt 1" in detail
    assert "nodes left a job whose world size is fixed: node-b" in detail  # verify's own


def test_a_restarted_coordinator_judges_the_takeover_the_same(tmp_path: Path) -> None:
    """Replaying the journal rebuilds the launchers' view in the same order: the same
    conflicts, whatever the restart."""
    import asyncio

    from slsa_dist._pb.v1 import collector_pb2 as pb
    from slsa_dist.collect._authority import Principal
    from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig

    signer = Signer.generate()
    config = CoordinatorConfig(job_id="job-1", out_dir=tmp_path, world_size=2)

    def attempt(node: str, first: int, *events: pb.Event) -> pb.ReportRequest:
        return pb.ReportRequest(job_id="job-1", sender=f"node/{node}", first_sequence=first,
                                events=list(events))

    async def run() -> None:
        coordinator = Coordinator(config, signer=signer)
        for node in ("node-a", "node-b"):
            await coordinator.register_node(pb.RegisterNodeRequest(
                job_id="job-1", node_id=node), Principal.node(node))
        await coordinator.accept_batch(attempt("node-b", 1, launched(0, [1], "STARTED")),
                                       Principal.node("node-b"))
        await coordinator.accept_batch(attempt("node-a", 1, launched(0, [0], "RESTARTED"),
                                               launched(1, [0, 1], "STARTED")),
                                       Principal.node("node-a"))
        for rank in (0, 1):
            await coordinator.register_rank(pb.RegisterRankRequest(
                job_id="job-1", rank=rank, attempt=1, world_size=2, node_id="node-a"),
                Principal.node("node-a"))
        coordinator._committer.close()
        coordinator._records.close()

    asyncio.run(run())
    restarted = Coordinator(config, signer=signer)
    assert not restarted.state.nodes_finished()
    restarted.state.finalize("job-1", "request", _now())
    statement = restarted.state.statement()
    from slsa_dist.model._provenance import Provenance

    completeness = Provenance.from_statement(statement).completeness()
    assert completeness is not None
    assert not completeness.complete
    assert any(c.startswith("node node-b: last in attempt 0") for c in completeness.conflicts)
    restarted._committer.close()
    restarted._records.close()


def _now():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)
