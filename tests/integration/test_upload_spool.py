"""slsa-dist upload-spool: events an agent could not deliver arrive later, as its own (#15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.collect._spool import Spool
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import verify_bundle

from support.background import free_port

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]


def test_a_spool_left_by_an_unreachable_coordinator_is_delivered_later(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    agent = Agent(coordinator=f"127.0.0.1:{port}", job_id="late", spool_dir=tmp_path / "spool",
                  identity=RankIdentity(rank=0, world_size=1, node_id="n0"), rpc_timeout=0.5)
    agent.record_shard("s", {"sha256": "ab" * 32}, samples=7)
    agent.complete()
    assert not agent.close(timeout=1)  # nothing listens: the events stay in the spool
    capsys.readouterr()
    (spool,) = (tmp_path / "spool" / "late").glob("*.spool")
    assert Spool(spool).sender()["identity"]["rank"] == 0  # type: ignore[index]
    signer = Signer.generate()
    with CoordinatorThread(job_id="late", signer=signer, out_dir=tmp_path / "out",
                           world_size=1, settle=0.2, listen=f"127.0.0.1:{port}") as server:
        assert cli_main(["upload-spool", str(tmp_path / "spool" / "late")]) == 0
        assert "2 event(s) delivered" in capsys.readouterr().out
        bundle = server.wait_finalized(30).bundle
    provenance = verify_bundle(bundle, keys=[signer.public()]).provenance
    (rank,) = provenance.rank_records()
    assert (rank.completed, rank.samples) == (True, 7)


def test_a_spool_without_its_sender_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.spool").write_bytes(b"")
    assert cli_main(["upload-spool", str(tmp_path / "old.spool"),
                     "--coordinator", "127.0.0.1:1"]) == 2
    assert "expected a spool that records its sender, found one written before" in \
        capsys.readouterr().err
