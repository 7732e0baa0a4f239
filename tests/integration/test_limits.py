"""Every limit is enforced with a clear status (reasons are in docs/threat-model.md)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import coordinator as coordinator_module
from slsa_dist.collect import wire
from slsa_dist.collect.coordinator import CoordinatorThread
from slsa_dist.collect.merge import Limits
from slsa_dist.sign.keys import Signer

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
