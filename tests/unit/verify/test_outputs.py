"""A job that saved nothing: its subject is unique to the run, and verify says so (#15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer

from support.sim import Cluster, done


def _bundle(tmp_path: Path, name: str, signer: Signer) -> Path:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(done())
    cluster.finalize()
    path = tmp_path / f"{name}.intoto.jsonl"
    write_bundle(path, [sign_statement(cluster.statement(), [signer])])
    return path


def test_two_runs_without_outputs_have_different_subjects() -> None:
    first, second = (Cluster(world_size=1) for _ in range(2))
    subjects = []
    for cluster in (first, second):
        cluster.rank(0).report(done())
        provenance = cluster.finalize()
        (subject,) = provenance.statement.subjects
        assert subject.name == "job/job-1"
        completeness = provenance.completeness()
        assert completeness is not None
        assert completeness.outputs_recorded is False
        subjects.append(subject.digest["sha256"])
    assert subjects[0] != subjects[1]


def test_verify_warns_and_require_outputs_fails(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    signer = Signer.generate()
    public = tmp_path / "k.pub"
    public.write_bytes(signer.public().public_pem())
    bundle = _bundle(tmp_path, "nothing", signer)
    assert cli_main(["verify", str(bundle), "--key", str(public)]) == 0
    assert "WARN  no outputs recorded" in capsys.readouterr().out
    assert cli_main(["verify", str(bundle), "--key", str(public), "--require-outputs"]) == 1
    assert "FAIL  outputs: expected at least one recorded output, found none" in \
        capsys.readouterr().out
