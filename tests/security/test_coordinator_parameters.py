"""The world size, its range and the node count are the coordinator's to sign.

Found by an independent review: a rank sent ``{"worldSizeRange": [1, 2]}`` as a
parameter of a fixed-size job; it was signed as sent, so the bundle read as elastic
and verify's rule that a departed node fails a fixed-size job no longer applied.
"""

from __future__ import annotations

import json

from slsa_dist._pb.v1 import collector_pb2 as pb

from support.sim import Cluster, done


def test_a_rank_cannot_sign_the_world_size_range_or_the_node_count() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(pb.Event(parameters=pb.Parameters(external_json=json.dumps(
        {"worldSizeRange": [1, 2], "nodes": 99, "worldSize": 7, "lr": 0.1}))), done())
    external = cluster.finalize().external_parameters
    assert "worldSizeRange" not in external
    assert external["worldSize"] == 1
    assert external.get("nodes", 0) != 99
    assert external["lr"] == 0.1  # the rank's own parameters stay
