"""A checkpoint one rank saved and another loaded is an output, not an input (#27).

Two real ranks under the torchrun plugin with zero-code capture: rank 0 saves a
checkpoint, rank 1 loads it. A resumed run reads the previous run's checkpoint and
overwrites it: that read stays an input (another digest), so ``verify chain`` can
follow it to the run that made it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, Complete

from support.background import signing_key
from support.localjob import run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(300)]

SCRIPT = Path(__file__).parents[2] / "assets" / "unchanged" / "checkpoint_read_back.py"


def _run(root: Path, job_id: str, *extra: str) -> tuple[dict[str, str], list[str], Path]:
    signing_key(root)
    ckpt = root / "ckpt" / "model.pt"
    job = run_local_job(job_id=job_id, key=root / "signing.key", out=root, script=SCRIPT,
                        script_args=["--ckpt", str(ckpt), *extra], timeout=180)
    assert job.torchrun_exit == 0, job.torchrun_log.read_text()[-3000:]
    provenance = verify_bundle(job.bundle, keys=[load_verifier(root / "signing.pub")],
                               policy=AllOf(Artifacts(ckpt), Complete())).provenance
    inputs = {d.name or "": d.digest["sha256"] for d in provenance.dependencies
              if d.annotations.get("slsadist_kind") == "input"}
    return inputs, [s.name for s in provenance.statement.subjects], ckpt


def test_a_checkpoint_rank_0_saved_and_rank_1_loaded_is_no_input(tmp_path: Path) -> None:
    inputs, subjects, _ = _run(tmp_path, "read-back")
    assert subjects == ["ckpt/model.pt"]
    assert "ckpt/model.pt" not in inputs, inputs


def test_the_previous_runs_checkpoint_a_resumed_run_overwrote_stays_an_input(
        tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt" / "model.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(torch.nn.Linear(4, 1).state_dict(), ckpt)
    previous = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    inputs, subjects, _ = _run(tmp_path, "resumed", "--resume")
    assert subjects == ["ckpt/model.pt"]
    assert inputs.get("ckpt/model.pt") == previous, inputs
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() != previous
