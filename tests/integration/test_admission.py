"""Back-pressure on the direct path (issue 27 item 6): a coordinator that has as much work
as it can serve refuses more at once, before doing any of it, with RESOURCE_EXHAUSTED and
a retry-after; agents and relays wait as told, and nothing is lost."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import _coordinator as coordinator_module
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig, CoordinatorThread
from slsa_dist.collect._relay import NodeRelay
from slsa_dist.errors import InputError
from slsa_dist.sign._keys import Signer

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(60)]


def _slow_journal(coordinator: Coordinator, seconds: float,
                  release: threading.Event | None = None) -> None:
    """Every journal commit takes ``seconds`` longer (or waits for ``release``, 10 s at
    most): calls stay in progress, as under load."""
    durable = coordinator._durable

    async def slowed(entry: object) -> None:
        if release is None:
            await asyncio.sleep(seconds)
        else:
            for _ in range(1000):
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
        await durable(entry)  # type: ignore[arg-type]

    coordinator._durable = slowed  # type: ignore[method-assign]


def _event(text: str) -> pb.Event:
    return pb.Event(annotation=pb.Annotation(key="k", value_json=f'"{text}"'))


def test_a_saturated_coordinator_refuses_at_once_with_retry_after(tmp_path: Path) -> None:
    release = threading.Event()
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=2, max_calls=1) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CollectorStub(channel)
            senders = [stub.RegisterRank(pb.RegisterRankRequest(
                job_id="j", rank=r, world_size=2, node_id="n"), timeout=10).sender
                for r in range(2)]
            _slow_journal(coordinator, 0, release)
            first = stub.Report.future(pb.ReportRequest(
                job_id="j", sender=senders[0], first_sequence=1, events=[_event("a")]),
                timeout=20)
            for _ in range(1000):
                if coordinator.admission.in_flight:
                    break
                time.sleep(0.01)
            before = coordinator.state.events
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                stub.Report(pb.ReportRequest(job_id="j", sender=senders[1], first_sequence=1,
                                             events=[_event("b")]), timeout=10)
            refused_in = time.monotonic() - start
            assert coordinator.state.events == before  # refused before any work
            # Status and reads are never turned away.
            assert stub.GetStatus(pb.StatusRequest(job_id="j"), timeout=10).state == \
                "collecting"
            release.set()
            assert first.result().acked_through == 1
            # Resent later, it goes through: the refusal did nothing to undo.
            assert stub.Report(pb.ReportRequest(job_id="j", sender=senders[1],
                                                first_sequence=1, events=[_event("b")]),
                               timeout=10).acked_through == 1
        assert coordinator.admission.in_flight == 0
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "load: expected a call to be served within its deadline (at most 1 at once), " \
        "found 1 in progress" in info.value.details()
    after = wire.retry_after(info.value)
    assert after is not None
    assert after >= coordinator_module.RETRY_AFTER_MS / 1000
    assert refused_in < 2.0  # at once, not after a wait in a queue


def test_a_call_whose_deadline_would_pass_in_the_queue_is_refused_early() -> None:
    """Admission counts what is ahead: with 100 calls in progress at 50 served a second, a
    call with 3 s left would wait 2 s of them, more than half its time: refused, each next
    refusal told a later slot (a burst comes back spread, not all at once)."""
    admission = coordinator_module._Admission(10_000)
    admission.rate = 50.0
    now = time.monotonic()
    for _ in range(100):
        assert admission.admit(now, 30.0) is None  # plenty of time: admitted
    waits = [admission.admit(now, 3.0) for _ in range(3)]
    assert all(w is not None for w in waits)
    assert waits[0] >= 2000  # type: ignore[operator]
    assert waits[0] < waits[1] < waits[2]  # type: ignore[operator]
    assert admission.admit(now, None) is None  # no deadline: only the bound applies
    assert admission.admit(now, 0.0) is not None  # its caller gave up: no work
    admission.limit = admission.in_flight
    assert admission.admit(now, None) is not None  # the bound


def test_max_calls_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="max calls: expected 1 or more calls handled at "
                                         "once, found 0"):
        CoordinatorConfig(job_id="j", out_dir=tmp_path, world_size=1, max_calls=0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("through", ["direct", "relay"])
def test_agents_retry_after_refusals_and_every_event_arrives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through: str) -> None:
    """Eight ranks report at once to a coordinator that serves one call at a time, each
    commit slowed: most calls are refused at first; the agents (or the node relay) wait
    as told, and the job completes with every event."""
    world = 8
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=world, settle=0.1, max_calls=1) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        _slow_journal(coordinator, 0.02)
        relays: list[NodeRelay] = []
        try:
            ranks = []
            for r in range(world):
                node = f"n{r % 2}"
                if through == "relay" and len(relays) < 2:  # two nodes: two callers at once
                    relays.append(NodeRelay(coordinator=server.address, job_id="j",
                                            node_id=node, socket_path=tmp_path / f"{node}.sock",
                                            flush_interval=0.0, batch_max=1))
                    relays[-1].start()
                if relays:
                    monkeypatch.setenv("SLSA_RELAY", relays[r % 2].address)
                ranks.append(Agent(coordinator=server.address, job_id="j",
                                   spool_dir=tmp_path / "sp",
                                   identity=RankIdentity(rank=r, world_size=world, node_id=node)))
            for rank, agent in enumerate(ranks):
                for step in range(20):
                    agent.record_shard(f"s{step % 4}", {"sha256": _sha(f"s{step % 4}")},
                                       samples=8)
                agent.record_file("final", f"__{rank}_0.distcp", {"sha256": _sha(str(rank))},
                                  role="final")
                agent.complete()
            assert all(a.close(30) for a in ranks)
            assert not any(a.stats().errors for a in ranks)
            result = server.wait_finalized(30)
        finally:
            for relay in relays:
                relay.close()
        events, refused = coordinator.state.events, coordinator.refused
    assert result.complete
    assert events == world * 22
    assert refused > 0  # it was saturated, and said so
    waited = sum(r.refusals for r in relays) if relays else sum(a.refusals for a in ranks)
    assert waited > 0  # and the refused waited as told, then sent again
