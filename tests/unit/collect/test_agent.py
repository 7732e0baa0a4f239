"""The agent: never blocks, spools through outages and restarts, survives fork."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from slsa_dist.collect._agent import Agent, RankIdentity, jsonable
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_COMPLETENESS, MEDIA_NODE, MEDIA_RANK
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer

from support.background import free_port

pytestmark = pytest.mark.grpc


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def provenance_of(bundle: Path) -> Provenance:
    return Provenance.from_statement(Statement.from_dict(json.loads(read_bundle(bundle)[0].payload)))


def test_recording_with_no_coordinator_returns_immediately(tmp_path: Path) -> None:
    agent = Agent(coordinator=f"127.0.0.1:{free_port()}", job_id="j", spool_dir=tmp_path,
                  identity=RankIdentity(rank=0, world_size=1, node_id="n"), rpc_timeout=0.5)
    start = time.perf_counter()
    for i in range(20_000):
        agent.record_shard("s", {"sha256": sha("s")}, samples=i)
    elapsed = time.perf_counter() - start
    # Nothing listens: had recording waited on the network it would take seconds per call.
    assert elapsed < 5.0
    assert agent.close(timeout=0.5) is False
    assert agent.stats().unacked + agent.stats().queued == 20_000


def test_events_spooled_during_an_outage_arrive_from_a_restarted_agent(tmp_path: Path) -> None:
    signer = Signer.generate()
    identity = RankIdentity(rank=0, world_size=1, node_id="n")
    offline = Agent(coordinator=f"127.0.0.1:{free_port()}", job_id="j", spool_dir=tmp_path / "sp",
                    identity=identity, rpc_timeout=0.2)
    for i in range(100):
        offline.record_shard(f"s{i % 5}", {"sha256": sha(f"s{i % 5}")}, samples=1)
    assert offline.close(timeout=1.0) is False  # nothing acknowledged; all of it is spooled
    assert (tmp_path / "sp" / "j" / identity.spool_name()).stat().st_size > 0
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           settle=0.1) as server:
        restarted = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                          identity=identity)
        restarted.complete()
        assert restarted.close(30)
        result = server.wait_finalized(30)
    (rank,) = provenance_of(result.bundle).records(MEDIA_RANK)
    assert rank["events"] == 101
    assert rank["samples"] == 100
    assert not (tmp_path / "sp" / "j" / identity.spool_name()).exists()  # acked: spool emptied


def test_a_forked_child_reports_as_its_own_sender(tmp_path: Path) -> None:
    signer = Signer.generate()
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           settle=0.1) as server:
        agent = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n"))
        agent.record_shard("parent", {"sha256": sha("parent")}, samples=1)
        assert agent.flush(30)  # the parent's channel is open before the fork
        pid = os.fork()
        if pid == 0:  # a DataLoader-like worker
            code = 1
            try:
                agent.record_shard("child", {"sha256": sha("child")}, samples=2)
                code = 0 if agent.close(30) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        agent.complete()
        assert agent.close(30)
        result = server.wait_finalized(30)
    (rank,) = provenance_of(result.bundle).records(MEDIA_RANK)
    assert sorted(s["name"] for s in rank["shards"]) == ["child", "parent"]
    assert rank["attempts"][0]["workers"][0] == 0
    assert len(rank["attempts"][0]["workers"]) == 2


def test_overflow_drops_are_counted_and_shown_in_the_provenance(tmp_path: Path) -> None:
    signer = Signer.generate()
    identity = RankIdentity(rank=0, world_size=1, node_id="n")
    agent = Agent(coordinator=f"127.0.0.1:{free_port()}", job_id="j", spool_dir=tmp_path / "sp",
                  identity=identity, queue_limit=10, rpc_timeout=0.2)
    for i in range(15):
        agent.record_shard("s", {"sha256": sha("s")}, samples=i)
    assert agent.stats().dropped == 5
    agent.close(timeout=0.5)
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           settle=0.1) as server:
        again = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                      identity=identity, queue_limit=10)
        again.record_shard("after", {"sha256": sha("after")})  # carries the dropped count
        again.complete()
        assert again.close(30)
        result = server.wait_finalized(30)
    (completeness,) = provenance_of(result.bundle).records(MEDIA_COMPLETENESS)
    assert completeness["sequenceGaps"] == ["rank/0/0/0: 5 event(s) dropped by the agent"]
    assert completeness["complete"] is False


def test_floats_become_strings_before_they_leave_the_process() -> None:
    assert jsonable({"lr": 0.001, "steps": [1, 2.5], "name": "x"}) == {
        "lr": "0.001", "steps": [1, "2.5"], "name": "x"}


def test_unknown_role_is_refused(tmp_path: Path) -> None:
    agent = Agent(coordinator="127.0.0.1:1", job_id="j", spool_dir=tmp_path,
                  identity=RankIdentity(rank=0, world_size=1, node_id="n"))
    with pytest.raises(InputError, match=r"role: expected one of \['auxiliary', 'checkpoint', 'final', 'output'\]"):
        agent.record_file("a", "p", {"sha256": sha("p")}, role="weights")


def test_under_an_outage_the_drop_count_and_the_completion_both_survive(tmp_path: Path) -> None:
    port = free_port()
    agent = Agent(coordinator=f"127.0.0.1:{port}", job_id="j", spool_dir=tmp_path / "sp",
                  identity=RankIdentity(rank=0, world_size=1, node_id="n"), queue_limit=10,
                  rpc_timeout=0.2)
    for i in range(10):
        agent.record_shard("s", {"sha256": sha("s")}, samples=i)
    deadline = time.monotonic() + 10
    while agent.stats().unacked < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (agent.stats().queued, agent.stats().unacked) == (0, 10)  # all spooled, none acked
    for i in range(5):
        agent.record_shard("s", {"sha256": sha("s")}, samples=i)  # over the limit: dropped
    time.sleep(2.5)  # the sender loops (and backs off) over an empty queue meanwhile
    assert agent.stats().dropped == 5  # still counted: it waits for an event to carry it
    agent.complete()  # over the limit too, but a completion is never dropped
    assert agent.stats().dropped == 5
    with CoordinatorThread(listen=f"127.0.0.1:{port}", job_id="j", signer=Signer.generate(),
                           out_dir=tmp_path / "out", world_size=1, settle=0.1) as server:
        assert agent.close(30)
        result = server.wait_finalized(30)
    provenance = provenance_of(result.bundle)
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    assert completeness["missingRanks"] == []
    assert completeness["sequenceGaps"] == ["rank/0/0/0: 5 event(s) dropped by the agent"]
    (rank,) = provenance.records(MEDIA_RANK)
    assert rank["events"] == 11


def test_a_coordinator_back_on_an_empty_journal_gets_every_later_event(tmp_path: Path) -> None:
    port = free_port()
    identity = RankIdentity(rank=0, world_size=1, node_id="n")
    agent = Agent(coordinator=f"127.0.0.1:{port}", job_id="j", spool_dir=tmp_path / "sp",
                  identity=identity, rpc_timeout=2.0)
    with CoordinatorThread(listen=f"127.0.0.1:{port}", job_id="j", signer=Signer.generate(),
                           out_dir=tmp_path / "first", world_size=1, settle=0.1):
        for i in range(7):
            agent.record_shard(f"early{i}", {"sha256": sha(f"early{i}")}, samples=1)
        assert agent.flush(30)  # acknowledged, so gone from the agent
    # The same job comes back on the same port with nothing journaled: it knows no
    # sender, and every sequence number the agent would use is past what it expects.
    with CoordinatorThread(listen=f"127.0.0.1:{port}", job_id="j", signer=Signer.generate(),
                           out_dir=tmp_path / "second", world_size=1, settle=0.1) as server:
        for i in range(5):
            agent.record_shard(f"late{i}", {"sha256": sha(f"late{i}")}, samples=1)
        agent.complete()
        assert agent.close(30)
        result = server.wait_finalized(30)
    assert agent.stats().dropped == 0
    provenance = provenance_of(result.bundle)
    (rank,) = provenance.records(MEDIA_RANK)
    assert sorted(s["name"] for s in rank["shards"]) == [f"late{i}" for i in range(5)]
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    assert completeness["missingRanks"] == []
    assert completeness["sequenceGaps"] == [
        "rank/0/0/0: 7 acknowledged event(s) lost by the coordinator (its journal was lost)"]
    assert completeness["complete"] is False


def test_a_second_agent_with_the_same_node_identity_loses_none_of_its_events(
        tmp_path: Path) -> None:
    # A Ray node gets a new node agent in every attempt, under the same identity; the
    # first one's spool is gone (all acknowledged) when the second one starts.
    from slsa_dist.collect._agent import NodeIdentity

    identity = NodeIdentity(node_id="n", hostname="h")
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=1, settle=0.1) as server:
        for attempt, state in ((0, "STARTED"), (1, "SUCCEEDED")):
            agent = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                          identity=identity)
            for i in range(5):
                agent.annotate(f"attempt-{attempt}/{i}", i)
            agent.record_attempt(attempt=attempt, run_id="r", ranks=[0], state=state)
            assert agent.close(30)
        rank = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                     identity=RankIdentity(rank=0, world_size=1, node_id="n"))
        rank.complete()
        assert rank.close(30)
        result = server.wait_finalized(30)
    provenance = provenance_of(result.bundle)
    (node,) = provenance.records(MEDIA_NODE)
    assert [(a["attempt"], a["state"]) for a in node["attempts"]] == [(0, "STARTED"),
                                                                      (1, "SUCCEEDED")]
    assert sorted(node["reported"]) == sorted(f"attempt-{a}/{i}" for a in (0, 1)
                                                 for i in range(5))
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    assert completeness["sequenceGaps"] == []


def test_retries_are_spread_between_half_and_all_of_the_backoff() -> None:
    from slsa_dist.collect._agent import retry_delay

    assert retry_delay(2.0, lambda: 0.0) == 1.0
    assert retry_delay(2.0, lambda: 1.0) == 2.0
    drawn = {round(retry_delay(0.4), 6) for _ in range(200)}
    assert len(drawn) > 150  # many different delays: no two agents retry in step
    assert all(0.2 <= d <= 0.4 for d in drawn)
