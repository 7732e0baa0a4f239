"""The signed node count is the job's machines, not every sender that registered as a node.

A fresh user's one-node Ray Train job was signed as ``nodes: 2``: the Train controller
registers as a node (``ray-controller``) to report the run's attempts, but hosts no rank
and reports no host. ``inspect`` already listed it apart as a launcher.
"""

from __future__ import annotations

from support.sim import Cluster, done


def test_a_launcher_that_hosts_no_rank_is_not_counted_as_a_node() -> None:
    cluster = Cluster(world_size=2)
    for rank in (0, 1):
        cluster.rank(rank, node="ray-node-1", pid=100 + rank).report(done())
    cluster.node("ray-node-1")
    cluster.node("ray-controller")  # reports attempts of the run, hosts no rank
    assert cluster.finalize().external_parameters["nodes"] == 1


def test_every_node_that_hosted_a_rank_is_counted() -> None:
    cluster = Cluster(world_size=2)
    for rank, node in ((0, "node-a"), (1, "node-b")):
        cluster.rank(rank, node=node).report(done())
        cluster.node(node)
    assert cluster.finalize().external_parameters["nodes"] == 2
