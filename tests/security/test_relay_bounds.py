"""Issue 25 F12: a node relay is bounded per item, not per call.

One Relay call of 150,000 registrations was accepted whole (three such calls:
450,000 senders, +250 MB resident, never released): the rate limit counted
calls, not items, and nothing bounded the workers of one rank or the senders
one principal registers. Now a Relay call carries at most ``max_relay_items``
items (refused whole beyond), the rate limit charges every item, a (rank,
attempt) has at most ``max_workers_per_rank`` workers and one principal
registers at most ``max_senders_per_principal`` senders.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig, CoordinatorThread
from slsa_dist.errors import SenderError
from slsa_dist.sign._keys import Signer


def _registrations(count: int, *, first: int = 0) -> list[pb.RelayItem]:
    return [pb.RelayItem(register=pb.RegisterRankRequest(
        job_id="j", rank=0, attempt=0, world_size=2, node_id="n0", run_id="r",
        worker=first + i, pid=first + i)) for i in range(count)]


def _coordinator(tmp_path: Path) -> Coordinator:
    return Coordinator(CoordinatorConfig(job_id="j", out_dir=tmp_path, world_size=2),
                       signer=Signer.generate())


def test_a_relay_call_with_too_many_items_is_refused_whole(tmp_path: Path) -> None:
    coordinator = _coordinator(tmp_path)

    async def call() -> pb.RelayResponse:
        return await coordinator.relay(pb.RelayRequest(job_id="j", node_id="n0",
                                                       items=_registrations(5_000)))

    with pytest.raises(SenderError, match="at most 1024 items") as info:
        asyncio.run(call())
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert coordinator.state.sender_node("rank/0/0/1") is None  # nothing of it applied


def test_the_workers_of_one_rank_attempt_are_bounded(tmp_path: Path) -> None:
    coordinator = _coordinator(tmp_path)
    limit = coordinator.state.limits.max_workers_per_rank

    async def calls() -> list[pb.RelayResult]:
        results: list[pb.RelayResult] = []
        for first in range(0, limit + 1_000, 1_000):
            reply = await coordinator.relay(pb.RelayRequest(
                job_id="j", node_id="n0", items=_registrations(1_000, first=first)))
            results.extend(reply.results)
        return results

    results = asyncio.run(calls())
    refused = [r for r in results if r.code]
    assert len(results) - len(refused) == limit
    assert refused[0].code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert f"at most {limit} workers" in refused[0].detail


def test_the_senders_one_principal_registers_take_bounded_memory(tmp_path: Path) -> None:
    """What one sender costs, times what one principal may register, is the bound."""
    coordinator = _coordinator(tmp_path)
    limits = coordinator.state.limits

    async def register(count: int) -> None:
        for first in range(0, count, 1_000):
            await coordinator.relay(pb.RelayRequest(
                job_id="j", node_id="n0", items=_registrations(1_000, first=first)))

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(register(2_000))
        per_sender = (tracemalloc.get_traced_memory()[0] - before) / 2_000
    finally:
        tracemalloc.stop()
    assert per_sender < 2_048, per_sender
    assert limits.max_senders_per_principal * per_sender < 160 << 20


def test_the_rate_limit_charges_every_relayed_item(tmp_path: Path) -> None:
    items = [pb.RelayItem(report=pb.ReportRequest(job_id="j", sender=f"rank/0/0/{i}",
                                                  first_sequence=1)) for i in range(1_000)]
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=2) as server, \
            grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CollectorStub(channel)
        codes = []
        for _ in range(8):  # 8,000 items: twice the burst, in well under a second
            try:
                stub.Relay(pb.RelayRequest(job_id="j", node_id="n0", items=items), timeout=30)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes
