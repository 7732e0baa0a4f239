"""The authorization table (collect._authority): who may claim what, row by row."""

from __future__ import annotations

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.collect import _authority as authority
from slsa_dist.collect._authority import CLAIMS, EVENT_CLAIMS, OPERATOR, REPLAY, Principal
from slsa_dist.errors import SenderError

from support.sim import Cluster, done, launched

NODE_A, NODE_B = Principal.node("node-a"), Principal.node("node-b")


def test_every_event_kind_names_one_claim_of_the_table() -> None:
    kinds = {f.name for f in pb.Event.DESCRIPTOR.oneofs_by_name["kind"].fields}
    assert set(EVENT_CLAIMS) == kinds
    for claim, who, _ in EVENT_CLAIMS.values():
        assert claim in CLAIMS
        assert who in ("rank", "node", "any")


@pytest.mark.parametrize(("kind", "from_rank", "allowed"), [
    ("shard", True, True), ("shard", False, False), ("file", False, False),
    ("completed", False, False), ("capture_gap", False, False),
    ("evidence", True, False), ("attempt", True, False), ("evidence", False, True),
    ("attempt", False, True), ("inventory", True, True), ("inventory", False, True),
    ("parameters", False, True), ("dependency", True, True)])
def test_each_event_kind_comes_from_the_sender_the_table_names(
        kind: str, from_rank: bool, allowed: bool) -> None:
    if allowed:
        authority.authorize_event(kind, from_rank, "e")
    else:
        with pytest.raises(SenderError):
            authority.authorize_event(kind, from_rank, "e")


@pytest.mark.parametrize(("principal", "rank", "node", "allowed"), [
    (Principal.rank(1), 1, "node-b", True),  # a rank certificate may name any node...
    (Principal.rank(2), 1, "node-b", False),  # ...but only for its own rank
    (NODE_B, 1, "node-b", True), (NODE_A, 1, "node-b", False),
    (OPERATOR, 1, "node-b", True), (REPLAY, 1, "node-b", True),
    (Principal("admin", "ops"), 1, "node-b", False)])
def test_who_may_register_a_rank(principal: Principal, rank: int, node: str,
                                 allowed: bool) -> None:
    if allowed:
        authority.authorize_rank(principal, rank, node)
    else:
        with pytest.raises(SenderError) as info:
            authority.authorize_rank(principal, rank, node)
        assert info.value.code == "PERMISSION_DENIED"


def test_a_sender_reports_as_its_rank_or_the_node_it_registered_under() -> None:
    authority.authorize_sender(Principal.rank(1), "rank/1/0/0", 1, "node-b")
    authority.authorize_sender(NODE_B, "rank/1/0/0", 1, "node-b")
    authority.authorize_sender(NODE_B, "node/node-b", None, "node-b")
    for principal, rank in ((NODE_A, 1), (Principal.rank(0), 1), (Principal.rank(1), None),
                            (NODE_A, None)):
        with pytest.raises(SenderError):
            authority.authorize_sender(principal, "s", rank, "node-b")


def test_only_a_node_acts_as_that_node_and_only_admins_finalize() -> None:
    authority.authorize_node(NODE_A, "node-a")
    for principal in (NODE_B, Principal.rank(0)):
        with pytest.raises(SenderError):
            authority.authorize_node(principal, "node-a")
    authority.authorize_finalize(Principal("admin", "ops"))
    with pytest.raises(SenderError):
        authority.authorize_finalize(NODE_A)


def test_the_state_refuses_another_principal_before_anything_changes() -> None:
    cluster = Cluster(world_size=2)
    registered = cluster.state.register_rank(pb.RegisterRankRequest(
        job_id="job-1", rank=1, world_size=2, node_id="node-b", run_id="r"), cluster.tick(),
        principal=NODE_B)
    with pytest.raises(SenderError, match="expected node 'node-b'"):
        cluster.state.accept(pb.ReportRequest(job_id="job-1", sender=registered.sender,
                                              first_sequence=1, events=[done()]),
                             cluster.tick(), principal=NODE_A)
    assert cluster.state.acked_through(registered.sender) == 0
    with pytest.raises(SenderError, match="expected node 'node-a'"):
        cluster.state.register_node(pb.RegisterNodeRequest(job_id="job-1", node_id="node-a"),
                                    cluster.tick(), principal=NODE_B)


def test_only_launchers_open_attempts_once_there_are_launchers() -> None:
    cluster = Cluster(world_size=1)
    node = cluster.node("node-0")
    node.report(launched(0, [0], "STARTED"))
    cluster.rank(0).report(done(exit_code=1))
    cluster.rank(0, attempt=1, pid=7).report(done())  # a rank "opens" attempt 1
    assert cluster.state.final_world_size == 1
    assert 0 not in cluster.state.completed_ranks()  # attempt 0 is still the final one
    node.report(launched(0, [0], "FAILED"))
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert "rank 0 attempt 1: registered, but no node launcher opened attempt 1" in \
        completeness.conflicts
    assert not completeness.complete


def test_a_restart_its_launchers_opened_judges_the_job() -> None:
    cluster = Cluster(world_size=1)
    node = cluster.node("node-0")
    node.report(launched(0, [0], "STARTED"))
    cluster.rank(0).report(done(exit_code=1))
    node.report(launched(0, [0], "RESTARTED", r0=1), launched(1, [0], "STARTED"))
    cluster.rank(0, attempt=1, pid=7).report(done())
    node.report(launched(1, [0], "SUCCEEDED", r0=0))
    assert cluster.state.nodes_finished()
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert completeness.complete, completeness.problems


def test_a_rank_listed_by_two_launchers_is_a_conflict() -> None:
    cluster = Cluster(world_size=1)
    cluster.node("node-0").report(launched(0, [0], "STARTED"))
    cluster.node("node-1").report(launched(0, [0], "STARTED"))
    cluster.rank(0).report(done())
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert "rank 0 attempt 0: listed by the launchers of nodes node-0, node-1" in \
        completeness.conflicts


def test_a_launcher_lists_no_rank_beyond_the_job() -> None:
    cluster = Cluster(world_size=2)
    with pytest.raises(SenderError, match=r"expected ranks 0..1 launched, found \[7\]"):
        cluster.node("node-0").report(launched(0, [0, 7], "STARTED"))


def test_a_departed_node_fails_a_fixed_job_but_not_an_elastic_one() -> None:
    for elastic in (False, True):
        cluster = Cluster(world_size=2, min_world_size=1 if elastic else None)
        a, b = cluster.node("a"), cluster.node("b")
        a.report(launched(0, [0], "STARTED"))
        b.report(launched(0, [1], "STARTED"))
        cluster.rank(0, node="a", world_size=2)
        cluster.rank(1, node="b", world_size=2)  # b dies here, silently
        world = [0] if elastic else [0, 1]  # a fixed job restarts every rank on node a
        a.report(launched(0, [0], "RESTARTED"), launched(1, world, "STARTED"))
        for rank in world:
            cluster.rank(rank, attempt=1, node="a", world_size=len(world), pid=9).report(
                done())
        a.report(launched(1, world, "SUCCEEDED"))
        completeness = cluster.finalize().completeness()
        assert completeness is not None
        assert completeness.complete is elastic, completeness.conflicts
        assert completeness.departed_nodes


def test_the_workers_of_a_rank_and_the_senders_of_a_principal_are_bounded() -> None:
    from slsa_dist.collect._merge import Limits

    cluster = Cluster(world_size=2, limits=Limits(max_workers_per_rank=3,
                                                   max_senders_per_principal=4))
    for worker in range(3):
        cluster.rank(0, worker=worker, pid=worker)
    with pytest.raises(SenderError, match="at most 3 workers"):
        cluster.rank(0, worker=3, pid=3)
    cluster.rank(1)
    with pytest.raises(SenderError, match="at most 4 senders registered by node/node-0"):
        cluster.rank(1, worker=1, pid=1)
