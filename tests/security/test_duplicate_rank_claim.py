"""Two processes claiming one rank is a conflict of the job, not a dropped call (#27).

A second process registering a (rank, attempt, worker) another holds was answered
``ALREADY_EXISTS`` and forgotten: the bundle was complete, and what the second
claimant did (a rank's work done twice, or by a process the launcher never started)
left no trace. The refusal stands, and the completeness record now names the rank
and both claimants, so ``verify`` fails. A restart of a rank is a new attempt (its
launcher numbers it) and stays allowed; the same registration retried is the same.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.collect._authority import Principal
from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig
from slsa_dist.errors import SenderError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_COMPLETENESS
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import VerificationFailed, verify_bundle

from support.sim import Cluster, done, signed, written

CLAIM = ("rank 0 attempt 0 worker 0: claimed by two processes: (node, run id, pid) "
         "('node-0', 'run', 100) and ('node-0', 'run', 666)")


def _claimed_twice() -> Cluster:
    cluster = Cluster(world_size=2)
    first = cluster.rank(0)
    with pytest.raises(SenderError, match="registered as") as refused:
        cluster.rank(0, pid=666)
    assert refused.value.code == "ALREADY_EXISTS"
    first.report(written("model", "w.bin"), done())
    cluster.rank(1).report(done())
    return cluster


def test_a_second_claim_on_a_rank_makes_the_job_incomplete_naming_both() -> None:
    cluster = _claimed_twice()
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["complete"] is False
    assert completeness["conflicts"] == [CLAIM]


def test_verify_fails_on_it(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle = signed(_claimed_twice(), tmp_path, signer)
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(bundle, keys=[signer.public()])
    detail = " ".join(c.detail for c in failed.value.checks if not c.ok)
    assert "rank 0 attempt 0 worker 0: claimed by two processes" in detail


def test_the_same_claimant_again_is_named_once() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(done())
    for _ in range(3):
        with pytest.raises(SenderError):
            cluster.rank(0, pid=666)
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert len(completeness["conflicts"]) == 1


def test_a_restart_is_a_new_attempt_and_no_conflict() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0, attempt=0).report(done(exit_code=1))
    cluster.rank(0, attempt=1, pid=200).report(done())
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["complete"] is True
    assert completeness["conflicts"] == []


def test_a_retried_registration_is_the_same_one_and_no_conflict() -> None:
    cluster = Cluster(world_size=1)
    sender = cluster.rank(0)
    assert cluster.rank(0).key == sender.key
    sender.report(done())
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["complete"] is True


def test_a_restarted_coordinator_keeps_the_claim(tmp_path: Path) -> None:
    """The refused registration is journaled (once): the replay refuses and keeps it."""
    signer = Signer.generate()
    config = CoordinatorConfig(job_id="job-1", out_dir=tmp_path, world_size=1)

    def register(pid: int) -> pb.RegisterRankRequest:
        return pb.RegisterRankRequest(job_id="job-1", rank=0, world_size=1,
                                      node_id="node-0", run_id="run", pid=pid)

    async def run() -> None:
        coordinator = Coordinator(config, signer=signer)
        await coordinator.register_rank(register(100), Principal.node("node-0"))
        for _ in range(2):
            with pytest.raises(SenderError) as refused:
                await coordinator.register_rank(register(666), Principal.node("node-0"))
            assert refused.value.code == "ALREADY_EXISTS"
        coordinator._committer.close()
        coordinator._records.close()

    asyncio.run(run())
    restarted = Coordinator(config, signer=signer)
    restarted.state.finalize("job-1", "request", dt.datetime.now(dt.timezone.utc))
    completeness = Provenance.from_statement(restarted.state.statement()).completeness()
    assert completeness is not None
    assert not completeness.complete
    assert list(completeness.conflicts) == [CLAIM]
    restarted._committer.close()
    restarted._records.close()


def test_a_claim_relayed_by_the_node_is_kept_across_a_restart_too(tmp_path: Path) -> None:
    signer = Signer.generate()
    config = CoordinatorConfig(job_id="job-1", out_dir=tmp_path, world_size=1)

    def register(pid: int) -> pb.RelayItem:
        return pb.RelayItem(register=pb.RegisterRankRequest(
            job_id="job-1", rank=0, world_size=1, node_id="node-0", run_id="run", pid=pid))

    async def run() -> None:
        coordinator = Coordinator(config, signer=signer)
        await coordinator.register_node(pb.RegisterNodeRequest(job_id="job-1",
                                                               node_id="node-0"),
                                        Principal.node("node-0"))
        reply = await coordinator.relay(pb.RelayRequest(
            job_id="job-1", node_id="node-0", items=[register(100), register(666)]))
        assert reply.results[0].WhichOneof("reply") == "registered"
        assert "recorded as a conflict" in reply.results[1].detail
        coordinator._committer.close()
        coordinator._records.close()

    asyncio.run(run())
    restarted = Coordinator(config, signer=signer)
    restarted.state.finalize("job-1", "request", dt.datetime.now(dt.timezone.utc))
    completeness = Provenance.from_statement(restarted.state.statement()).completeness()
    assert completeness is not None
    assert list(completeness.conflicts) == [CLAIM]
    restarted._committer.close()
    restarted._records.close()
