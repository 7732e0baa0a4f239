"""Item 11: when the node saw a rank fail and the rank reported success, that is a conflict.

The rank's own SUCCEEDED used to win: completeness said nothing, verify passed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import VerificationFailed, verify_bundle

from support.sim import Cluster, done


def _job(node_saw: int) -> Cluster:
    cluster = Cluster(world_size=1)
    node = cluster.node("node-0")
    cluster.rank(0).report(done(exit_code=0))  # the rank says it succeeded
    node.report(pb.Event(attempt=pb.AttemptRecord(
        attempt=0, run_id="r", ranks=[0], state="FAILED" if node_saw else "SUCCEEDED",
        exit_codes={0: node_saw})))
    return cluster


def test_a_rank_claiming_success_the_launcher_saw_fail_is_a_conflict(tmp_path: Path) -> None:
    cluster = _job(node_saw=1)
    provenance = cluster.finalize()
    completeness = provenance.completeness()
    assert completeness is not None
    assert not completeness.complete
    assert completeness.conflicts == ("rank 0 attempt 0: the rank reported exit 0 (SUCCEEDED), "
                                      "node node-0 saw exit 1",)
    signer = Signer.generate()
    bundle = tmp_path / "job.intoto.jsonl"
    write_bundle(bundle, [sign_statement(cluster.statement(), [signer])])
    with pytest.raises(VerificationFailed, match="conflicts: rank 0 attempt 0"):
        verify_bundle(bundle, keys=[signer.public()])


def test_agreement_is_no_conflict() -> None:
    completeness = _job(node_saw=0).finalize().completeness()
    assert completeness is not None
    assert completeness.conflicts == ()
