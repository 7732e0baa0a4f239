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

from support.sim import Cluster, done, launched


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


def _completed(code: int, state: str) -> pb.Event:
    return pb.Event(completed=pb.RankCompleted(exit_code=code, state=state))


def test_a_node_saying_succeeded_with_a_non_zero_code_is_a_conflict() -> None:
    """#27 item 5: the node record said SUCCEEDED with exit codes {0: 3, 1: -15}."""
    cluster = Cluster(world_size=1)
    node = cluster.node("node-0")
    node.report(launched(0, [0], "STARTED"))
    cluster.rank(0).report(_completed(3, "FAILED"))
    node.report(launched(0, [0], "SUCCEEDED", r0=3))
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert not completeness.complete
    assert completeness.conflicts == ("node node-0 attempt 0: SUCCEEDED, yet rank(s) 0 exited "
                                      "non-zero",)
    assert completeness.failed_ranks == ("rank 0 attempt 0: exit 3 (FAILED); node node-0 saw "
                                         "exit 3",)


def test_a_sigkilled_rank_ends_by_its_launchers_word_and_is_a_failed_rank() -> None:
    """The rank killed by SIGKILL says nothing: its launcher's final report ends it, so
    the job finalizes now (it used to wait for the idle timeout), and never as a success."""
    cluster = Cluster(world_size=2)
    node = cluster.node("node-0")
    node.report(launched(0, [0, 1], "STARTED"))
    cluster.rank(0).report(_completed(-15, "TERMINATED"))
    cluster.rank(1)
    assert not cluster.state.all_ranks_ended()
    node.report(launched(0, [0, 1], "FAILED", r0=-15, r1=-9))
    assert cluster.state.all_ranks_ended()
    assert cluster.state.nodes_finished()
    assert cluster.state.completed_ranks() == set()
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert not completeness.complete
    assert completeness.conflicts == ()
    assert completeness.failed_ranks == (
        "rank 0 attempt 0: exit -15 (SIGTERM, TERMINATED); node node-0 saw exit -15 (SIGTERM)",
        "rank 1 attempt 0: no completion reported; node node-0 saw exit -9 (SIGKILL)")


def test_a_failure_in_an_attempt_that_was_restarted_is_no_failed_rank() -> None:
    cluster = Cluster(world_size=1)
    node = cluster.node("node-0")
    node.report(launched(0, [0], "STARTED"))
    cluster.rank(0).report(_completed(3, "FAILED"))
    node.report(launched(0, [0], "RESTARTED", r0=3), launched(1, [0], "STARTED"))
    cluster.rank(0, attempt=1).report(done())
    node.report(launched(1, [0], "SUCCEEDED", r0=0))
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert completeness.failed_ranks == ()
    assert completeness.complete, completeness
