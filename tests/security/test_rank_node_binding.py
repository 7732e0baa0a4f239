"""Item 8: a rank cannot choose its node.

A rank registered under any node id (or none), and ``--require-attestation``
then counted another node's quote for it; a rank could send evidence itself.
"""

from __future__ import annotations

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.errors import SenderError

from support.sim import Cluster, done


def test_an_empty_node_id_is_refused() -> None:
    with pytest.raises(SenderError, match="expected the id of the node that launched it"):
        Cluster(world_size=1).rank(0, node="")


def test_a_rank_cannot_send_evidence() -> None:
    cluster = Cluster(world_size=1)
    with pytest.raises(SenderError, match="evidence is reported by nodes, found it from a rank"):
        cluster.rank(0).report(pb.Event(evidence=pb.Evidence(kind="tpm", blob=b"x",
                                                               nonce=b"n")))


def test_a_rank_claiming_a_node_other_than_its_launcher_is_a_conflict() -> None:
    cluster = Cluster(world_size=1)
    launcher = cluster.node("node-a")
    cluster.node("node-m")
    cluster.rank(0, node="node-m").report(done())  # node-m has the nicer TPM
    launcher.report(pb.Event(attempt=pb.AttemptRecord(attempt=0, run_id="r", ranks=[0],
                                                      state="SUCCEEDED", exit_codes={0: 0})))
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert "rank 0 attempt 0: registered as node 'node-m', launched by node(s) node-a" in \
        completeness.conflicts
    assert not completeness.complete
