"""The node relay: ranks report over a Unix socket to their node agent, which batches.

Real gRPC throughout: a coordinator on loopback, a NodeRelay on a Unix socket,
rank agents that find it through SLSA_RELAY exactly as torchrun's workers do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.collect._relay import RESERVE_ABOVE, NodeRelay
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import verify_bundle

pytestmark = pytest.mark.grpc

WORLD = 8


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("reserve_above", [RESERVE_ABOVE, 1])
def test_ranks_report_through_their_node_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               reserve_above: int) -> None:
    """With ``reserve_above=1`` every Relay call asks for room first (Reserve)."""
    signer = Signer.generate()
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out",
                           world_size=WORLD, settle=0.1) as server:
        relay = NodeRelay(coordinator=server.address, job_id="j", node_id="n0",
                          socket_path=tmp_path / "relay.sock", reserve_above=reserve_above)
        monkeypatch.setenv("SLSA_RELAY", relay.start())
        try:
            node = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                         identity=NodeIdentity(node_id="n0", hostname="h0"))
            node.record_attempt(attempt=0, run_id="r", ranks=range(WORLD), state="SUCCEEDED",
                                exit_codes=dict.fromkeys(range(WORLD), 0))
            ranks = [Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                           identity=RankIdentity(rank=r, world_size=WORLD, node_id="n0"))
                     for r in range(WORLD)]
            for rank, agent in enumerate(ranks):
                for step in range(50):
                    agent.record_shard(f"s{step % 4}", {"sha256": _sha(f"s{step % 4}")},
                                       samples=8)
                agent.record_file("final", f"__{rank}_0.distcp", {"sha256": _sha(str(rank))},
                                  role="final")
                agent.complete()
            assert all(a.close(30) for a in [node, *ranks])
            result = server.wait_finalized(30)
            assert server.coordinator is not None
            events = server.coordinator.state.events
            granted = server.coordinator.reserved_calls
        finally:
            relay.close()
    assert result.complete
    assert events == WORLD * 52 + 1
    # Every rank call went through the relay: 8 registrations and at least 8 reports in
    # fewer Relay calls than that.
    assert 0 < relay.forwarded < 2 * WORLD
    # Batches from 16 KiB reserve room first (here the ranks' 50 reads, together); every
    # one does when told to.
    assert relay.reserved == granted
    assert 0 < relay.reserved <= relay.forwarded
    if reserve_above == 1:
        assert relay.reserved == relay.forwarded
    assert not (tmp_path / "relay.sock").exists()
    records = verify_bundle(result.bundle, keys=[signer.public()]).provenance.rank_records()
    assert [r.rank for r in records] == list(range(WORLD))
    assert {a.relayed_by for r in records for a in r.attempts} == {"n0"}
    assert all(r.completed and r.samples == 400 for r in records)


def _stub(address: str) -> tuple[grpc.Channel, pb_grpc.CollectorStub]:
    channel = grpc.insecure_channel(address)
    return channel, pb_grpc.CollectorStub(channel)


def test_a_relay_cannot_speak_for_another_nodes_ranks(tmp_path: Path) -> None:
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=4, settle=3600) as server:
        channel, stub = _stub(server.address)
        with channel:
            own = stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=1, world_size=4,
                                                           node_id="n1"))
            reply = stub.Relay(pb.RelayRequest(job_id="j", node_id="n0", items=[
                pb.RelayItem(register=pb.RegisterRankRequest(job_id="j", rank=0, world_size=4,
                                                             node_id="n0")),
                pb.RelayItem(register=pb.RegisterRankRequest(job_id="j", rank=2, world_size=4,
                                                             node_id="n1")),
                pb.RelayItem(report=pb.ReportRequest(
                    job_id="j", sender=own.sender, first_sequence=1,
                    events=[pb.Event(completed=pb.RankCompleted(exit_code=0))])),
                pb.RelayItem()]))
    ok, other_node, other_sender, empty = reply.results
    assert ok.code == 0
    assert ok.registered.sender == "rank/0/0/0"
    assert other_node.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "expected node 'n0' to relay its own ranks only" in other_node.detail
    assert other_sender.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "expected a sender of node 'n0', found rank/1/0/0 of node 'n1'" in \
        other_sender.detail
    assert empty.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.coordinator is not None
    assert server.coordinator.state.completed_ranks() == set()  # nothing of it was applied


def _refused_through_relay(tmp_path: Path,
                           call: Callable[[pb_grpc.CollectorStub], object]) -> grpc.RpcError:
    """What a rank's call through node n0's relay ends with (it must be refused)."""
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=2, settle=3600) as server:
        relay = NodeRelay(coordinator=server.address, job_id="j", node_id="n0",
                          socket_path=tmp_path / "r.sock")
        channel, stub = _stub(relay.start())
        try:
            with channel, pytest.raises(grpc.RpcError) as refused:
                call(stub)
        finally:
            relay.close()
    return refused.value


def test_the_relay_refuses_a_rank_naming_another_node(tmp_path: Path) -> None:
    refused = _refused_through_relay(tmp_path, lambda stub: stub.RegisterRank(
        pb.RegisterRankRequest(job_id="j", rank=0, world_size=2, node_id="n9"), timeout=10))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "expected ranks of node 'n0', found a rank of node 'n9'" in (refused.details() or "")


def test_a_coordinator_refusal_reaches_the_rank_with_its_resync_mark(tmp_path: Path) -> None:
    refused = _refused_through_relay(tmp_path, lambda stub: stub.Report(
        pb.ReportRequest(job_id="j", sender="rank/0/0/0", first_sequence=1,
                         events=[pb.Event(completed=pb.RankCompleted())]), timeout=10))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expected a registered sender" in (refused.details() or "")
    assert any(m.key == "slsa-resync" for m in refused.trailing_metadata() or ())


def test_a_restarted_coordinator_still_knows_who_relayed(tmp_path: Path) -> None:
    journal = tmp_path / "j.journal.sqlite"
    signer = Signer.generate()
    kwargs = {"job_id": "j", "signer": signer, "out_dir": tmp_path / "out", "world_size": 1,
              "journal_path": journal, "settle": 3600}
    with CoordinatorThread(**kwargs) as server:
        channel, stub = _stub(server.address)
        with channel:
            stub.Relay(pb.RelayRequest(job_id="j", node_id="n0", items=[pb.RelayItem(
                register=pb.RegisterRankRequest(job_id="j", rank=0, world_size=1,
                                                node_id="n0"))]))
    with CoordinatorThread(**kwargs) as server:  # replays the journal
        assert server.coordinator is not None
        assert server.coordinator.replayed == 1
        channel, stub = _stub(server.address)
        with channel:
            stub.Report(pb.ReportRequest(job_id="j", sender="rank/0/0/0", first_sequence=1,
                                         events=[pb.Event(completed=pb.RankCompleted())]))
        result = server.finalize()
    (record,) = verify_bundle(result.bundle, keys=[signer.public()]).provenance.rank_records()
    assert [a.relayed_by for a in record.attempts] == ["n0"]
