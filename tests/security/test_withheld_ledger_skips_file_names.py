"""Issue 25 F6: a record ledger that is withheld, or a line of it that is renamed,
must not switch the file-name check off.

With the ledger withheld, ``verify --artifact`` compared the root digest only (one
generic warning), so a renamed model file that keeps the order passed. In
``--rank N`` mode a checkpoint line renamed in the ledger was taken as absent (no
proof of absence), and both the artifact's names and the rank's files left to that
checkpoint went unchecked. Both now FAIL, naming what is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.sign._keys import Signer

from support.modeljob import signed_model_job


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(bundle with its ledger beside it, model folder, public key)."""
    signer = Signer.generate()
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    bundle, model = signed_model_job(tmp_path / "job", signer, ledger=True)
    return bundle, model, public


def _rename_keeping_order(model: Path) -> None:
    (model / "model.safetensors").rename(model / "model.safetensorz")


def _verify(bundle: Path, public: Path, *extra: str) -> int:
    return cli_main(["verify", str(bundle), "--key", str(public), *extra])


def test_with_the_ledger_the_renamed_file_fails(job: tuple[Path, Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bundle, model, public = job
    assert _verify(bundle, public, "--artifact", str(model)) == 0
    _rename_keeping_order(model)
    assert _verify(bundle, public, "--artifact", str(model)) == 1
    assert "missing: model.safetensors" in capsys.readouterr().out


def test_a_withheld_ledger_fails_the_artifact_check_naming_the_ledger(
        job: tuple[Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle, model, public = job
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(bundle, alone / bundle.name)  # the ledger stays behind
    _rename_keeping_order(model)
    capsys.readouterr()
    assert _verify(alone / bundle.name, public, "--artifact", str(model)) == 1
    out = capsys.readouterr().out
    assert f"FAIL  artifact {model}" in out
    assert "big.ledger.jsonl" in out.split(f"FAIL  artifact {model}")[1].splitlines()[0]


def test_a_withheld_ledger_fails_even_for_the_untouched_folder(
        job: tuple[Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The names cannot be checked: fail closed, whatever the folder holds."""
    bundle, model, public = job
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(bundle, alone / bundle.name)
    assert _verify(alone / bundle.name, public, "--artifact", str(model)) == 1
    assert "FAIL  artifact" in capsys.readouterr().out


def _rename_checkpoint_line(bundle: Path) -> None:
    """The attacker renames the checkpoint's line (same length: the index still fits)."""
    ledger = bundle.parent / "big.ledger.jsonl"
    data = ledger.read_bytes()
    assert data.count(b'"name":"checkpoint/model"') == 1
    ledger.write_bytes(data.replace(b'"name":"checkpoint/model"', b'"name":"checkpoint/modeL"'))


def test_rank_mode_does_not_take_a_renamed_checkpoint_line_as_absent(
        job: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bundle, model, public = job
    assert _verify(bundle, public, "--rank", "1", "--artifact", str(model)) == 0
    _rename_checkpoint_line(bundle)
    _rename_keeping_order(model)
    capsys.readouterr()
    assert _verify(bundle, public, "--rank", "1", "--artifact", str(model)) == 1
    out = capsys.readouterr().out
    assert f"FAIL  artifact {model}" in out


def test_rank_mode_checks_the_files_a_rank_leaves_to_its_checkpoint(
        job: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Rank 1's file has no digest of its own in the ledger: it is its checkpoint's. With
    that line renamed, --rank 1 cannot check it and fails."""
    bundle, _, public = job
    assert _verify(bundle, public, "--rank", "1") == 0
    _rename_checkpoint_line(bundle)
    capsys.readouterr()
    assert _verify(bundle, public, "--rank", "1") == 1
    assert "FAIL  rank 1" in capsys.readouterr().out
