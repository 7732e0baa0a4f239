"""Issue 25 F2: a rank belongs to the node whose launcher lists it.

Under mutual TLS node A registered a second worker of rank 1 (which runs on node
B) under itself and reported shard reads into rank 1's record: no conflict, and
verify passed. Separately a rank registered under a node whose launcher listed
only other ranks, and ``--require-attestation tpm --trusted-aks`` passed on that
node's quote.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.errors import SenderError
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import check_bundle

from support.sim import Cluster, done, launched, shard, signed


def test_a_worker_of_a_rank_from_another_node_is_refused() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(1, node="node-b")
    with pytest.raises(SenderError, match="rank 1 attempt 0 runs on node 'node-b'") as info:
        cluster.rank(1, node="node-a", worker=4242, pid=4242)  # node A's own certificate
    assert info.value.code == "PERMISSION_DENIED"


def test_a_rank_its_launcher_listed_elsewhere_is_refused_whoever_came_first() -> None:
    cluster = Cluster(world_size=2)
    cluster.node("node-b").report(launched(0, [1], "STARTED"))
    with pytest.raises(SenderError, match="node-b") as info:
        cluster.rank(1, node="node-a", worker=4242, pid=4242)
    assert info.value.code == "PERMISSION_DENIED"


def test_a_foreign_worker_registered_first_is_caught_when_the_launcher_lists_the_rank(
        tmp_path: Path) -> None:
    cluster = Cluster(world_size=2)
    node_a, node_b = cluster.node("node-a"), cluster.node("node-b")
    # Before any launcher's list arrived: node A registers a worker of rank 1 first.
    cluster.rank(1, node="node-a", worker=4242, pid=4242).report(shard("poison"), done())
    node_a.report(launched(0, [0], "STARTED"))
    cluster.rank(0, node="node-a").report(done())
    with pytest.raises(SenderError):  # rank 1 itself is kept out of its own record
        cluster.rank(1, node="node-b")
    node_b.report(launched(0, [1], "SUCCEEDED", r1=0))
    node_a.report(launched(0, [0], "SUCCEEDED", r0=0))
    signer = Signer.generate()
    checks = check_bundle(signed(cluster, tmp_path, signer), keys=[signer.public()]).checks
    (completeness,) = [c for c in checks if c.name == "completeness"]
    assert not completeness.ok
    assert "rank 1 attempt 0: registered as node 'node-a', launched by node(s) node-b" in \
        completeness.detail


def test_a_rank_under_a_node_whose_launcher_did_not_list_it_is_refused() -> None:
    cluster = Cluster(world_size=2)
    cluster.node("node-m").report(launched(0, [1], "STARTED"))
    with pytest.raises(SenderError, match="node 'node-m' launched rank") as info:
        cluster.rank(0, node="node-m")  # rank 0's own certificate names no node
    assert info.value.code == "PERMISSION_DENIED"


def test_a_rank_under_a_node_that_lists_it_later_not_is_not_counted(tmp_path: Path) -> None:
    cluster = Cluster(world_size=2)
    node_m = cluster.node("node-m")
    cluster.rank(0, node="node-m").report(done())  # before node M's launcher reported
    cluster.rank(1, node="node-m").report(done())
    node_m.report(launched(0, [1], "SUCCEEDED", r1=0))
    signer = Signer.generate()
    result = check_bundle(signed(cluster, tmp_path, signer), keys=[signer.public()])
    checks, provenance = result.checks, result.provenance
    assert provenance is not None
    (completeness,) = [c for c in checks if c.name == "completeness"]
    assert not completeness.ok
    assert "rank 0 attempt 0: registered as node 'node-m', whose launcher did not list it" \
        in completeness.detail
    ranks = {r.rank: r for r in provenance.rank_records()}
    assert not ranks[0].completed
    assert ranks[1].completed


def test_a_ledger_bundle_does_not_count_an_unlisted_rank_either(tmp_path: Path) -> None:
    """Above 256 ranks the records go to a ledger (sealed as ranks complete): the rank
    whose launcher did not list it is judged the same, whatever was sealed before."""
    world = 300
    cluster = Cluster(world_size=world)
    node_a, node_m = cluster.node("node-a"), cluster.node("node-m")
    node_a.report(launched(0, list(range(1, world)), "STARTED"))
    cluster.rank(0, node="node-m").report(shard("s"), done())  # sealed before the list
    for rank in range(1, world):
        cluster.rank(rank, node="node-a").report(shard("s"), done())
    node_m.report(launched(0, [], "SUCCEEDED"))
    node_a.report(launched(0, list(range(1, world)), "SUCCEEDED"))
    provenance = cluster.finalize_to_ledger(tmp_path / "job-1.ledger.jsonl")
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.missing_ranks == (0,)
    assert "rank 0 attempt 0: registered as node 'node-m', whose launcher did not list it" \
        in completeness.conflicts
    ranks = {r.rank: r for r in provenance.rank_records()}
    assert not ranks[0].completed
    assert ranks[1].completed
