"""Every limit is enforced with a clear status (reasons are in docs/threat-model.md)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import _coordinator as coordinator_module
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._coordinator import Coordinator, CoordinatorThread
from slsa_dist.collect._merge import Limits
from slsa_dist.sign._keys import Signer

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(60)]


def test_request_rate_per_peer_is_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_module, "RATE_BURST", 5)
    monkeypatch.setattr(coordinator_module, "RATE_PER_SECOND", 1)
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=1) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CollectorStub(channel)
            for _ in range(5):
                stub.GetStatus(pb.StatusRequest(job_id="j"), timeout=10)
            with pytest.raises(grpc.RpcError) as info:
                stub.GetStatus(pb.StatusRequest(job_id="j"), timeout=10)
            # In plaintext the bucket is per node: another node's relay is not slowed.
            stub.RegisterNode(pb.RegisterNodeRequest(job_id="j", node_id="n1"), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate: expected at most 1 requests/s from ipv4:127.0.0.1" in info.value.details()
    # The refusal says when to come back; the agent waits that long (with jitter).
    assert wire.retry_after(info.value) == coordinator_module.RETRY_AFTER_MS / 1000


def test_ranks_per_job_are_limited(tmp_path: Path) -> None:
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=8, limits=Limits(max_world_size=8)) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CollectorStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=0, world_size=9),
                                  timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "world size: expected 1..8, found 9"


def test_events_per_rank_are_limited(tmp_path: Path) -> None:
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=1, limits=Limits(max_events_per_sender=3)) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CollectorStub(channel)
            sender = stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=0, world_size=1, node_id="n"),
                                       timeout=10).sender
            event = pb.Event(annotation=pb.Annotation(key="k", value_json="1"))
            stub.Report(pb.ReportRequest(job_id="j", sender=sender, first_sequence=1,
                                         events=[event] * 3), timeout=10)
            with pytest.raises(grpc.RpcError) as info:
                stub.Report(pb.ReportRequest(job_id="j", sender=sender, first_sequence=4,
                                             events=[event]), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "expected at most 3 events" in info.value.details()


def _journal_waits_for(release: threading.Event, coordinator: Coordinator) -> None:
    """Calls hold their bytes until ``release`` is set: the journal commit they wait for
    is held back (for at most 10 s)."""
    durable = coordinator._durable

    async def held_until_released(entry: object) -> None:
        for _ in range(1000):
            if release.is_set():
                break
            await asyncio.sleep(0.01)
        await durable(entry)  # type: ignore[arg-type]

    coordinator._durable = held_until_released  # type: ignore[method-assign]


def _until_held(coordinator: Coordinator) -> None:
    """Until a call holds bytes in the coordinator (at most 10 s)."""
    for _ in range(1000):
        if coordinator.room.held:
            return
        time.sleep(0.01)


def test_request_bytes_held_at_once_are_bounded(tmp_path: Path) -> None:
    """A burst of calls is refused with retry-after once the requests in progress hold the
    coordinator's budget of bytes (one always goes through), not queued without bound."""
    release = threading.Event()
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=2, held_bytes=64) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CollectorStub(channel)
            senders = [stub.RegisterRank(pb.RegisterRankRequest(
                job_id="j", rank=r, world_size=2, node_id="n"), timeout=10).sender
                for r in range(2)]
            _journal_waits_for(release, coordinator)

            def report(rank: int) -> pb.ReportRequest:
                return pb.ReportRequest(job_id="j", sender=senders[rank], first_sequence=1,
                                        events=[pb.Event(annotation=pb.Annotation(
                                            key="k", value_json='"' + "x" * 100 + '"'))])

            first = stub.Report.future(report(0), timeout=20)
            _until_held(coordinator)  # the first call holds its bytes
            assert coordinator.room.held == report(0).ByteSize()
            with pytest.raises(grpc.RpcError) as info:
                stub.Report(report(1), timeout=10)
            release.set()
            assert first.result().acked_through == 1
            assert stub.Report(report(1), timeout=10).acked_through == 1  # later, it goes
        assert coordinator.room.held == 0
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "memory: expected at most 0 MiB of requests in progress" in info.value.details()
    assert wire.retry_after(info.value) == coordinator_module.RETRY_AFTER_MS / 1000


def test_a_relay_that_reserves_waits_for_room_instead_of_being_refused(tmp_path: Path) -> None:
    """Flow control: node n1 asks for room while n0's call holds all of it; it is answered
    only once n0's call is done, and its call then goes through, never refused."""
    release = threading.Event()
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=2, held_bytes=64) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CollectorStub(channel)

            def register(rank: int) -> pb.RelayRequest:
                return pb.RelayRequest(job_id="j", node_id=f"n{rank}", items=[pb.RelayItem(
                    register=pb.RegisterRankRequest(job_id="j", rank=rank, world_size=2,
                                                    node_id=f"n{rank}"))])

            senders = [stub.Relay(register(r), timeout=10).results[0].registered.sender
                       for r in range(2)]
            _journal_waits_for(release, coordinator)

            def batch(rank: int) -> pb.RelayRequest:
                return pb.RelayRequest(job_id="j", node_id=f"n{rank}", items=[pb.RelayItem(
                    report=pb.ReportRequest(job_id="j", sender=senders[rank], first_sequence=1,
                                            events=[pb.Event(annotation=pb.Annotation(
                                                key="k", value_json='"' + "x" * 100 + '"'))]))])

            first = stub.Relay.future(batch(0), timeout=20)
            _until_held(coordinator)  # n0's call holds its bytes
            room = stub.Reserve.future(pb.ReserveRequest(
                job_id="j", node_id="n1", bytes=batch(1).ByteSize()), timeout=20)
            time.sleep(0.3)
            assert not room.done()  # waits while there is no room
            release.set()
            assert first.result().results[0].reported.acked_through == 1
            assert room.result().granted_bytes == 64  # larger than the budget: all of it
            reply = stub.Relay(batch(1), timeout=10)
        assert reply.results[0].reported.acked_through == 1
        assert coordinator.refused == 0
        assert coordinator.room.held == coordinator.room.reserved == 0
