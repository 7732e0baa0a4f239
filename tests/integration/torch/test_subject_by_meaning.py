"""The subject is the model by meaning, and nothing a job wrote is its input (#27 item 2).

One rank in-process against a real coordinator, zero-code capture on: the saves a
training script makes in the order the FSDP2 example makes them (model state, then
optimizer state), a file written and read back, an artifact recorded explicitly, and
``SLSA_SUBJECT`` naming the subject outright.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from slsa_dist.capture import _auto as auto
from slsa_dist.capture import _runtime
from slsa_dist.collect import CoordinatorThread
from slsa_dist.integrations import _contract
from slsa_dist.model import Provenance
from slsa_dist.verify import Result, check_bundle, verify_bundle

from support.rank import in_process_rank

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]


@pytest.fixture
def rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CoordinatorThread]:
    with in_process_rank(tmp_path, monkeypatch, "subject") as server:
        monkeypatch.chdir(tmp_path)
        auto.install(_contract.init(argv=["train.py"], finish_at_exit=False))
        yield server


def _finish(server: CoordinatorThread) -> Provenance:
    runtime = _runtime.current()
    assert runtime is not None
    assert runtime.finish(timeout=30)
    bundle = server.wait_finalized(60).bundle
    return verify_bundle(bundle, keys=[server.signer.public()]).provenance  # type: ignore[attr-defined]


def _finish_checked(server: CoordinatorThread) -> Result:
    """The rank finished, the job finalized, its bundle checked (passed or not)."""
    runtime = _runtime.current()
    assert runtime is not None
    assert runtime.finish(timeout=30)
    bundle = server.wait_finalized(60).bundle
    return check_bundle(bundle, keys=[server.signer.public()])  # type: ignore[attr-defined]


def _inputs(provenance: Provenance) -> list[str]:
    return sorted(d.name or "" for d in provenance.dependencies
                  if d.annotations.get("slsadist_kind") == "input")


def test_the_optimizer_saved_last_is_no_subject(rank: CoordinatorThread, tmp_path: Path) -> None:
    """The FSDP2 example with --dcp-api saved optim_state_dict.pt after
    model_state_dict.pt, and the optimizer state became the subject."""
    (tmp_path / "ckpt").mkdir()
    torch.save({"w": torch.ones(3)}, "ckpt/model_state_dict.pt")
    torch.save({"state": {}, "param_groups": []}, "ckpt/optim_state_dict.pt")
    provenance = _finish(rank)
    assert [s.name for s in provenance.statement.subjects] == ["ckpt/model_state_dict.pt"]
    roles = {c.name: c.role for c in provenance.checkpoints()}
    assert roles == {"ckpt/model_state_dict.pt": "final",
                     "ckpt/optim_state_dict.pt": "intermediate"}


def test_a_file_written_then_read_back_is_an_output_not_an_input(
        rank: CoordinatorThread, tmp_path: Path) -> None:
    data = tmp_path / "data.pt"
    torch.save(torch.arange(8), data)  # an input made before the run: written elsewhere
    data.rename(tmp_path / "input.pt")
    torch.load(tmp_path / "input.pt")
    torch.save({"w": torch.ones(2)}, "model.pt")
    torch.load("model.pt")  # read back (an eval, a resume within the run)
    with open("notes.txt", "w") as handle:
        handle.write("epoch 1\n")
    Path("notes.txt").read_text()
    _runtime.record_artifact("model.pt", role="final")  # slsa-dist reading what it records
    provenance = _finish(rank)
    assert _inputs(provenance) == ["input.pt"]
    assert [s.name for s in provenance.statement.subjects] == ["model.pt"]


def test_slsa_subject_names_the_subject(rank: CoordinatorThread, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "weights.bin").write_bytes(b"\x01" * 64)
    (tmp_path / "export" / "config.json").write_text("{}")
    torch.save({"w": torch.ones(2)}, "last.pt")  # saved last: would be the subject
    monkeypatch.setenv("SLSA_SUBJECT", "export")
    provenance = _finish(rank)
    assert [s.name for s in provenance.statement.subjects] == ["export"]
    verify_bundle(rank.coordinator.config.out_dir / "subject.intoto.jsonl",  # type: ignore[union-attr]
                  keys=[rank.signer.public()])  # type: ignore[attr-defined]


def test_a_subject_that_is_not_there_is_a_gap(rank: CoordinatorThread,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save({"w": torch.ones(2)}, "model.pt")
    monkeypatch.setenv("SLSA_SUBJECT", "nowhere")
    result = _finish_checked(rank)
    assert not result.ok
    assert any("subject" in c.detail and "SLSA_SUBJECT" in c.detail for c in result.failures)


def test_slsa_subject_naming_what_the_job_only_read_is_a_gap(
        rank: CoordinatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a second review: SLSA_SUBJECT=base (the job's unvetted input) made the
    input the signed subject, and verify chain followed it to the job itself."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import os; os.makedirs('base'); "
                    "open('base/pytorch_model.bin', 'wb').write(b'backdoor' * 8)"],
                   cwd=tmp_path, check=True, timeout=60)  # made outside this rank
    (tmp_path / "base" / "pytorch_model.bin").read_bytes()  # the job reads its base model
    torch.save({"w": torch.ones(2)}, "finetuned.pt")
    monkeypatch.setenv("SLSA_SUBJECT", "base")
    result = _finish_checked(rank)
    assert not result.ok
    assert any("this rank never wrote it" in c.detail for c in result.failures)
    assert result.provenance is not None
    assert "base" not in [s.name for s in result.provenance.statement.subjects]
