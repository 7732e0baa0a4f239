"""The coordinator over real gRPC on loopback, with real agents and real processes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import Coordinator, CoordinatorConfig, CoordinatorThread
from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_RANK
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import verify_bundle

from support.background import (
    cli,
    coordinator_process,
    free_port,
    signing_key,
)

pytestmark = pytest.mark.grpc

ASSETS = Path(__file__).parents[1] / "assets"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_provenance(bundle: Path) -> Provenance:
    (envelope,) = read_bundle(bundle)
    return Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


def test_64_ranks_report_concurrently_into_one_verified_provenance(tmp_path: Path) -> None:
    signer = Signer.generate()
    world, events = 64, 300
    with CoordinatorThread(job_id="job-64", signer=signer, out_dir=tmp_path / "out",
                           world_size=world, settle=0.2) as server:
        errors: list[BaseException] = []

        def rank(r: int) -> None:
            try:
                agent = Agent(coordinator=server.address, job_id="job-64",
                              spool_dir=tmp_path / "spool",
                              identity=RankIdentity(rank=r, world_size=world, node_id=f"n{r // 8}"))
                for i in range(events):
                    agent.record_shard(f"shard-{(r + i) % 128}", {"sha256": sha(f"s{(r + i) % 128}")},
                                       samples=4, epoch=i // 128)
                agent.record_file("ckpt/final", f"__{r}_0.distcp", {"sha256": sha(f"f{r}")},
                                  size=100, role="final")
                agent.complete()
                assert agent.close(60), agent.stats()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors
        result = server.wait_finalized(60)
    assert result.complete
    provenance = verify_bundle(result.bundle, keys=[signer.public()]).provenance
    ranks = provenance.records(MEDIA_RANK)
    assert len(ranks) == world
    assert all(r["events"] == events + 2 for r in ranks)
    assert len(provenance.dependencies) == 128  # 64 x 300 reads of 128 shards, deduplicated
    assert [s.name for s in provenance.statement.subjects] == ["ckpt/final"]


def _stub(address: str) -> tuple[grpc.Channel, pb_grpc.CollectorStub]:
    channel = grpc.insecure_channel(address)
    return channel, pb_grpc.CollectorStub(channel)


def _code(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_duplicate_and_out_of_order_batches_over_grpc(tmp_path: Path) -> None:
    def batch(sender: str, first: int, count: int) -> pb.ReportRequest:
        return pb.ReportRequest(job_id="j", sender=sender, first_sequence=first, events=[
            pb.Event(shard=pb.ShardConsumed(name=f"s{first + i}", digest={"sha256": sha(str(first + i))}))
            for i in range(count)])

    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path,
                           world_size=1) as server:
        channel, stub = _stub(server.address)
        sender = stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=0, world_size=1, node_id="n")).sender
        assert stub.Report(batch(sender, 1, 10)).acked_through == 10
        duplicate = stub.Report(batch(sender, 1, 10))
        assert (duplicate.acked_through, duplicate.duplicates) == (10, 10)
        code, details = _code(lambda: stub.Report(batch(sender, 21, 10)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "expected 11, found 21" in details
        assert stub.Report(batch(sender, 11, 10)).acked_through == 20
        assert stub.Report(batch(sender, 15, 10)).acked_through == 24  # overlapping
        assert server.coordinator is not None
        assert server.coordinator.state.events == 24
        channel.close()


def test_bad_input_gets_specific_status_codes_and_loses_nothing(tmp_path: Path) -> None:
    signer = Signer.generate()
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path, world_size=4) as server:
        channel, stub = _stub(server.address)
        ok = stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=0, world_size=4,
                                                      node_id="n0", pid=1))
        accepted = pb.ReportRequest(job_id="j", sender=ok.sender, first_sequence=1, events=[
            pb.Event(shard=pb.ShardConsumed(name="kept", digest={"sha256": sha("kept")}))])
        assert stub.Report(accepted).acked_through == 1
        cases = [
            (lambda: stub.RegisterRank(pb.RegisterRankRequest(job_id="nope", rank=0, world_size=4)),
             grpc.StatusCode.NOT_FOUND, "job id: expected 'j', found 'nope'"),
            (lambda: stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=4, world_size=4)),
             grpc.StatusCode.OUT_OF_RANGE, "rank: expected 0..3, found 4"),
            (lambda: stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=1, world_size=8)),
             grpc.StatusCode.FAILED_PRECONDITION, "world size: expected 4, found 8"),
            (lambda: stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=0, world_size=4,
                                                              node_id="n9", pid=1)),
             grpc.StatusCode.ALREADY_EXISTS, "registered as (node, run id, pid)"),
            (lambda: stub.Report(pb.ReportRequest(job_id="j", sender=ok.sender, first_sequence=2,
                                                  events=[pb.Event(shard=pb.ShardConsumed(
                                                      name="x", digest={"sha256": "nothex"}))])),
             grpc.StatusCode.INVALID_ARGUMENT, "expected 64 lowercase hex digits"),
            (lambda: stub.Report(pb.ReportRequest(job_id="j", sender=ok.sender, first_sequence=2,
                                                  events=[pb.Event(evidence=pb.Evidence(
                                                      blob=b"\0" * (9 << 20)))])),
             grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
        ]
        for call, expected_code, message in cases:
            code, details = _code(call)
            assert code == expected_code, details
            assert message in details
        # The coordinator is still up and kept what it acknowledged.
        assert stub.GetStatus(pb.StatusRequest(job_id="j")).events == 1
        channel.close()
        result = server.finalize()
    provenance = verify_bundle(result.bundle, keys=[signer.public()]).provenance if result.complete else \
        read_provenance(result.bundle)
    (rank,) = provenance.records(MEDIA_RANK)
    assert [s["name"] for s in rank["shards"]] == ["kept"]


def test_plaintext_off_loopback_is_refused(tmp_path: Path) -> None:
    import asyncio

    async def start() -> None:
        coordinator = Coordinator(CoordinatorConfig(job_id="j", out_dir=tmp_path, world_size=1),
                                  signer=Signer.generate())
        await coordinator.start("0.0.0.0:0")

    with pytest.raises(InputError, match="plaintext is allowed on loopback only"):
        asyncio.run(start())
    with pytest.raises(InputError, match="plaintext is allowed on loopback only"):
        Agent(coordinator="10.1.2.3:50051", job_id="j",
              identity=RankIdentity(rank=0, world_size=1, node_id="n"))


@pytest.mark.multiprocess
def test_finalize_command_records_missing_ranks_and_verify_names_them(tmp_path: Path) -> None:
    key, public = signing_key(tmp_path)
    port = free_port()
    with coordinator_process(tmp_path, job_id="job-f", port=port, key=key, world_size=2) as proc:
        agent = Agent(coordinator=f"127.0.0.1:{port}", job_id="job-f", spool_dir=tmp_path / "s",
                      identity=RankIdentity(rank=0, world_size=2, node_id="n0"))
        agent.complete()
        assert agent.close(30)
        done = subprocess.run([*cli(), "finalize", "--coordinator", f"127.0.0.1:{port}",
                               "--job-id", "job-f"], capture_output=True, text=True, timeout=60,
                              check=False)
        # an incomplete bundle: both the command and the coordinator say so by exit code
        assert done.returncode == 1, done.stderr
        assert "complete=false missing_ranks=[1]" in done.stdout
        assert proc.wait(30) == 1
    verified = subprocess.run([*cli(), "verify", str(tmp_path / "out" / "job-f.intoto.jsonl"),
                               "--key", str(public)], capture_output=True, text=True, timeout=60,
                              check=False)
    assert verified.returncode == 1
    assert "ranks without a completed report: 1" in verified.stdout
    assert "missing ranks: 1" in verified.stdout


def test_restarted_coordinator_replays_to_the_same_statement(tmp_path: Path) -> None:
    signer = Signer.generate()
    kwargs = {"job_id": "j", "signer": signer, "out_dir": tmp_path, "world_size": 2}
    with CoordinatorThread(**kwargs) as server:
        channel, stub = _stub(server.address)
        for r in range(2):
            sender = stub.RegisterRank(pb.RegisterRankRequest(job_id="j", rank=r, world_size=2,
                                                                  node_id="n")).sender
            stub.Report(pb.ReportRequest(job_id="j", sender=sender, first_sequence=1, events=[
                pb.Event(file=pb.FileWritten(artifact="m", path=f"{r}.bin",
                                             digest={"sha256": sha(str(r))}))]))
        channel.close()
        first = server.finalize()
    statement = read_bundle(first.bundle)[0].payload
    first.bundle.unlink()
    with CoordinatorThread(**kwargs) as again:  # replays the journal, finds it finalized
        second = again.wait_finalized(30)
    assert read_bundle(second.bundle)[0].payload == statement


def test_a_restart_mid_job_keeps_the_ledger_s_input_numbers(tmp_path: Path) -> None:
    """Rank lines refer to inputs by the number of their first read. A coordinator
    restarted mid-job rebuilds its sealed records from the journal, numbering the inputs
    as it first did, so the ledger written after the restart refers rightly."""
    signer = Signer.generate()
    kwargs = {"job_id": "j", "signer": signer, "out_dir": tmp_path, "world_size": 2,
              "settle": 0.1, "ledger_above": 0}

    def read(name: str) -> pb.Event:
        return pb.Event(shard=pb.ShardConsumed(name=name, digest={"sha256": sha(name)},
                                               samples=1))

    done = pb.Event(completed=pb.RankCompleted(exit_code=0, state="SUCCEEDED"))
    senders = []
    with CoordinatorThread(**kwargs) as server:
        channel, stub = _stub(server.address)
        for r in range(2):
            senders.append(stub.RegisterRank(pb.RegisterRankRequest(
                job_id="j", rank=r, world_size=2, node_id="n")).sender)
        stub.Report(pb.ReportRequest(job_id="j", sender=senders[0], first_sequence=1,
                                     events=[read("x"), read("y"), done]))  # sealed
        stub.Report(pb.ReportRequest(job_id="j", sender=senders[1], first_sequence=1,
                                     events=[read("y")]))
        channel.close()
    with CoordinatorThread(**kwargs) as again:  # replays the journal, then rank 1 ends
        channel, stub = _stub(again.address)
        stub.Report(pb.ReportRequest(job_id="j", sender=senders[1], first_sequence=2,
                                     events=[read("z"), done]))
        channel.close()
        result = again.wait_finalized(30)
    lines = {line["name"]: line["record"] for line in
             map(json.loads, (tmp_path / "j.ledger.jsonl").read_text().splitlines())}
    assert [lines[f"input/{n}"]["name"] for n in range(3)] == ["x", "y", "z"]
    assert [s["input"] for s in lines["rank/0"]["shards"]] == [0, 1]
    assert [s["input"] for s in lines["rank/1"]["shards"]] == [1, 2]
    provenance = verify_bundle(result.bundle, keys=[signer.public()]).provenance
    assert [[s.name for s in r.shards or ()] for r in provenance.rank_records()] == \
        [["x", "y"], ["y", "z"]]


@pytest.mark.multiprocess
def test_plain_one_line_errors_for_a_busy_port_a_busy_journal_and_no_port(
        tmp_path: Path) -> None:
    """#15 item 8: each used to be a traceback, or a coordinator silently on port 443."""
    key, _ = signing_key(tmp_path)
    port = free_port()

    def second(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli(), "coordinator", "--job-id", "job-p", "--key", str(key),
                               "--world-size", "1", "--plaintext", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    with coordinator_process(tmp_path, job_id="job-p", port=port, key=key, world_size=1):
        busy_port = second("--listen", f"127.0.0.1:{port}", "--out", str(tmp_path / "other"))
        busy_journal = second("--listen", "127.0.0.1:0", "--out", str(tmp_path / "out"))
    no_port = second("--listen", "127.0.0.1", "--out", str(tmp_path / "third"))
    for done, expected in (
            (busy_port, f"slsa-dist: error: listen: expected a free port to bind at "
                        f"'127.0.0.1:{port}', found it in use or not bindable"),
            (busy_journal, "expected no other coordinator using it, found one holding its lock"),
            (no_port, "slsa-dist: error: listen: expected HOST:PORT (port 0 picks a free one; "
                      "IPv6 as [::1]:PORT), found '127.0.0.1'")):
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_events_reach_the_coordinator_while_the_rank_runs_not_only_at_exit(
        tmp_path: Path) -> None:
    # A rank killed mid-training (its node died) keeps what it had reported: events go
    # out within the flush interval, every time, not only when a batch fills or at close.
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=1) as server:
        agent = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n"))
        try:
            for epoch in range(3):
                agent.record_shard("s", {"sha256": sha("s")}, samples=10, epoch=epoch)
                deadline = time.monotonic() + 5
                while agent.stats().acked_through < epoch + 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert agent.stats().acked_through == epoch + 1, f"epoch {epoch}"
        finally:
            agent.close(timeout=10)
