"""Mutual TLS: a rank reports only as itself, only into its job; plaintext only on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import Coordinator, CoordinatorConfig, CoordinatorThread
from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.collect._wire import peer_is_loopback
from slsa_dist.errors import InputError
from slsa_dist.sign._ca import Identity, JobCA, channel_credentials
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import verify_bundle

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca = JobCA.create("job-t")
    ca.write(tmp_path / "ca")
    ca.issue(Identity(job="job-t", role="coordinator"),
             hosts=("127.0.0.1", "localhost")).write(tmp_path / "coordinator")
    for rank in ("0", "1"):
        ca.issue(Identity(job="job-t", role="rank", name=rank)).write(tmp_path / f"rank-{rank}")
    ca.issue(Identity(job="job-t", role="admin")).write(tmp_path / "admin")
    # A CA reused for another job (a misconfiguration) must not let that job in.
    reused = JobCA(job="other", key=ca._key, cert=ca.cert)
    reused.issue(Identity(job="other", role="rank", name="0")).write(tmp_path / "other-job")
    stranger = JobCA.create("job-t")  # a different CA for the same job name
    stranger.issue(Identity(job="job-t", role="rank", name="0")).write(tmp_path / "stranger")
    return tmp_path


@pytest.fixture
def server(pki: Path):  # type: ignore[no-untyped-def]
    signer = Signer.generate()
    with CoordinatorThread(job_id="job-t", signer=signer, out_dir=pki / "out", world_size=2,
                           settle=0.2, tls=pki / "coordinator") as thread:
        thread.signer = signer  # type: ignore[attr-defined]
        yield thread


def stub(server, identity_dir: Path):  # type: ignore[no-untyped-def]
    channel = grpc.secure_channel(server.address, channel_credentials(identity_dir))
    return channel, pb_grpc.CollectorStub(channel)


def code_of(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details() or ""


def test_a_rank_registers_and_reports_as_itself(server, pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel, collector = stub(server, pki / "rank-0")
    reply = collector.RegisterRank(pb.RegisterRankRequest(job_id="job-t", rank=0, world_size=2, node_id="n"),
                                   timeout=10)
    assert reply.sender == "rank/0/0/0"
    channel.close()


def test_a_rank_cannot_register_as_another_rank(server, pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel, collector = stub(server, pki / "rank-1")
    code, details = code_of(lambda: collector.RegisterRank(
        pb.RegisterRankRequest(job_id="job-t", rank=0, world_size=2, node_id="n"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == "identity: expected rank '0', found the certificate of rank '1'"
    channel.close()


def test_a_rank_cannot_report_into_another_ranks_sender(server, pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel0, rank0 = stub(server, pki / "rank-0")
    sender = rank0.RegisterRank(pb.RegisterRankRequest(job_id="job-t", rank=0, world_size=2, node_id="n"),
                                timeout=10).sender
    channel1, rank1 = stub(server, pki / "rank-1")
    code, _ = code_of(lambda: rank1.Report(pb.ReportRequest(
        job_id="job-t", sender=sender, first_sequence=1,
        events=[pb.Event(completed=pb.RankCompleted())]), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    channel0.close()
    channel1.close()


def test_a_certificate_for_another_job_is_refused(server, pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel, collector = stub(server, pki / "other-job")
    code, details = code_of(lambda: collector.RegisterRank(
        pb.RegisterRankRequest(job_id="job-t", rank=0, world_size=2, node_id="n"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "expected a certificate for job 'job-t', found one for job 'other'" in details
    channel.close()


def test_only_an_admin_may_finalize(server, pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel, collector = stub(server, pki / "rank-0")
    code, _ = code_of(lambda: collector.Finalize(pb.FinalizeRequest(job_id="job-t"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    channel.close()
    done = subprocess.run([sys.executable, "-m", "slsa_dist.cli", "finalize", "--coordinator",
                           server.address, "--job-id", "job-t", "--tls", str(pki / "admin")],
                          capture_output=True, text=True, timeout=60, check=False)
    # the admin finalized it; no rank ever reported, so the bundle is incomplete: exit 1
    assert done.returncode == 1, done.stderr
    assert "complete=false missing_ranks=[0, 1]" in done.stdout


@pytest.mark.parametrize("who", ["stranger", None])
def test_no_certificate_or_a_foreign_ca_fails_the_handshake(server, pki: Path,  # type: ignore[no-untyped-def]
                                                            who: str | None) -> None:
    if who is None:
        channel = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(
            root_certificates=(pki / "ca" / "ca.pem").read_bytes()))
    else:
        channel = grpc.secure_channel(server.address, channel_credentials(pki / who))
    collector = pb_grpc.CollectorStub(channel)
    code, _ = code_of(lambda: collector.GetStatus(pb.StatusRequest(job_id="job-t"), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE  # refused during the TLS handshake
    channel.close()


def test_agents_over_mutual_tls_produce_a_verified_provenance(server, pki: Path,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    for rank in (0, 1):
        monkeypatch.setenv("SLSA_TLS_DIR", str(pki / f"rank-{rank}"))
        agent = Agent(coordinator=server.address, job_id="job-t", spool_dir=pki / "spool",
                      identity=RankIdentity(rank=rank, world_size=2, node_id="n"))
        agent.complete()
        assert agent.close(30), agent.stats()
    result = server.wait_finalized(30)
    assert result.complete
    verify_bundle(result.bundle, keys=[server.signer.public()])


def test_plaintext_is_refused_off_loopback(tmp_path: Path) -> None:
    assert peer_is_loopback("ipv4:127.0.0.1:5000")
    assert peer_is_loopback("ipv6:[::1]:5000")
    assert not peer_is_loopback("ipv4:10.1.2.3:5000")
    assert not peer_is_loopback("unix:/tmp/x.sock")

    async def start() -> None:
        await Coordinator(CoordinatorConfig(job_id="j", out_dir=tmp_path, world_size=1),
                          signer=Signer.generate()).start(
            "0.0.0.0:0")

    with pytest.raises(InputError, match="plaintext is allowed on loopback only"):
        asyncio.run(start())


def test_the_coordinator_command_requires_a_transport_choice(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_bytes(Signer.generate().private_pem())
    done = subprocess.run([sys.executable, "-m", "slsa_dist.cli", "coordinator", "--job-id",
                           "j", "--listen", "127.0.0.1:0", "--key", str(key), "--out",
                           str(tmp_path), "--world-size", "1"], capture_output=True, text=True,
                          timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "expected --tls DIR (mutual TLS) or --plaintext (loopback only)" in done.stderr


@pytest.fixture
def node_pki(pki: Path) -> Path:
    ca = JobCA.load(pki / "ca")
    for node in ("node-a", "node-b"):
        ca.issue(Identity(job="job-t", role="node", name=node)).write(pki / f"node-{node}")
    return pki


def test_a_node_certificate_serves_the_ranks_it_launched(server, node_pki: Path) -> None:  # type: ignore[no-untyped-def]
    """#14 item 18: one certificate per pod or host, no rank keys to hand out."""
    channel, node_a = stub(server, node_pki / "node-node-a")
    sender = node_a.RegisterRank(pb.RegisterRankRequest(
        job_id="job-t", rank=0, world_size=2, node_id="node-a"), timeout=10).sender
    reply = node_a.Report(pb.ReportRequest(job_id="job-t", sender=sender, first_sequence=1,
                                           events=[pb.Event(completed=pb.RankCompleted())]),
                          timeout=10)
    assert reply.acked_through == 1
    channel.close()


def test_a_node_certificate_cannot_register_a_rank_on_another_node(server, node_pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel, node_a = stub(server, node_pki / "node-node-a")
    code, details = code_of(lambda: node_a.RegisterRank(pb.RegisterRankRequest(
        job_id="job-t", rank=1, world_size=2, node_id="node-b"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == ("identity: expected node 'node-b', the node of rank 1, found the "
                       "certificate of node 'node-a'")
    channel.close()


def test_a_node_certificate_cannot_report_for_another_nodes_rank(server, node_pki: Path) -> None:  # type: ignore[no-untyped-def]
    channel_b, node_b = stub(server, node_pki / "node-node-b")
    sender = node_b.RegisterRank(pb.RegisterRankRequest(
        job_id="job-t", rank=1, world_size=2, node_id="node-b"), timeout=10).sender
    channel_a, node_a = stub(server, node_pki / "node-node-a")
    code, _ = code_of(lambda: node_a.Report(pb.ReportRequest(
        job_id="job-t", sender=sender, first_sequence=1,
        events=[pb.Event(completed=pb.RankCompleted())]), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    channel_a.close()
    channel_b.close()


def test_rank_agents_use_their_node_certificate_through_the_tls_dir_template(
        server, node_pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLSA_TLS_DIR", str(node_pki / "node-{node}"))
    for rank, node in ((0, "node-a"), (1, "node-b")):
        agent = Agent(coordinator=server.address, job_id="job-t", spool_dir=node_pki / "spool",
                      identity=RankIdentity(rank=rank, world_size=2, node_id=node))
        agent.complete()
        assert agent.close(30)
        assert agent.stats().errors == (), agent.stats()
        assert agent.stats().acked_through == 1
