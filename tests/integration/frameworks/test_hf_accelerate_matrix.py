"""Hugging Face Trainer and Accelerate at 2 ranks, as users run them (#27 item 3).

The Trainer with and without ``SlsaTrainerCallback``, under ``slsa-torchrun``
and under ``accelerate launch`` (zero-code: ``accelerate launch -m
slsa_dist.exec train.py``; with the callback: ``accelerate launch train.py``
and ``SLSA_COORDINATOR`` set), and a plain Accelerate loop
(``Accelerator().prepare(model, opt, loader)``) under ``accelerate launch``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.background import signing_key
from support.frameworks import ASSETS, assert_job, data_file, verify_artifact_cli
from support.localjob import LocalJob, run_command_job, run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(400)]

ENV = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
MATRIX = [("slsa-torchrun", False), ("slsa-torchrun", True), ("accelerate", False),
          ("accelerate", True)]
def _accelerate(*arguments: str) -> list[str]:
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher is not None
    # --multi_gpu is its multi-process launcher (torchrun); on CPU the ranks use gloo
    return [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", *arguments]


_JOBS: dict[tuple[str, bool], tuple[LocalJob, Path, str]] = {}


@pytest.fixture(scope="module")
def trainer_job(tmp_path_factory: pytest.TempPathFactory,
                ) -> Callable[[str, bool], tuple[LocalJob, Path, str]]:
    """One Trainer job per (launcher, callback), run once for the tests that read it."""

    def run(launcher: str, callback: bool) -> tuple[LocalJob, Path, str]:
        if (launcher, callback) not in _JOBS:
            root = tmp_path_factory.mktemp(f"hf-{launcher}-{int(callback)}")
            signing_key(root)
            digest = data_file(root / "data.pt")
            arguments = ["--data", str(root / "data.pt"), "--out", str(root / "hf"),
                         *(["--callback"] if callback else [])]
            job_id = f"hf-{launcher}-{int(callback)}"
            script = ASSETS / "hf_train.py"
            if launcher == "slsa-torchrun":
                job = run_local_job(job_id=job_id, key=root / "signing.key", out=root,
                                    script=script, script_args=arguments, env=ENV,
                                    timeout=300)
            else:
                command = _accelerate(str(script), *arguments) if callback else \
                    _accelerate("-m", "slsa_dist.exec", str(script), *arguments)
                job = run_command_job(job_id=job_id, key=root / "signing.key", out=root,
                                      command=command, env=ENV, timeout=300)
            _JOBS[launcher, callback] = (job, root, digest)
        return _JOBS[launcher, callback]

    return run


@pytest.mark.parametrize(("launcher", "callback"), MATRIX)
def test_a_trainer_at_two_ranks(trainer_job: Callable[[str, bool], tuple[LocalJob, Path, str]],
                                launcher: str, callback: bool) -> None:
    job, root, digest = trainer_job(launcher, callback)
    provenance, records = assert_job(job, root, expect_inputs={"data.pt": digest})
    # 2 steps of 4 per rank (accelerate draws one batch ahead), each its own batches
    assert all(8 <= r.samples <= 12 for r in records.values()), records
    for rank, record in records.items():
        (outer, _inner) = (record.shards or ())[0].sampler["batchSamplers"]
        assert (outer["type"], outer["num_processes"], outer["process_index"]) == \
            ("BatchSamplerShard", 2, rank)
    if callback:
        hyper = provenance.external_parameters["hyperparameters"]
        assert (hyper["seed"], hyper["per_device_train_batch_size"]) == (3, 4)


@pytest.mark.parametrize(("launcher", "callback"), MATRIX)
def test_the_trainers_saved_model_verifies(
        trainer_job: Callable[[str, bool], tuple[LocalJob, Path, str]],
        launcher: str, callback: bool) -> None:
    job, root, _ = trainer_job(launcher, callback)
    verify_artifact_cli(job, root, [root / "hf" / "final"])


def test_a_plain_accelerate_loop_at_two_ranks(tmp_path: Path) -> None:
    signing_key(tmp_path)
    digest = data_file(tmp_path / "data.pt")
    job = run_command_job(
        job_id="accelerate-loop", key=tmp_path / "signing.key", out=tmp_path,
        command=_accelerate("-m", "slsa_dist.exec", str(ASSETS / "accelerate_loop.py"),
                            "--data", str(tmp_path / "data.pt"), "--out",
                            str(tmp_path / "out")),
        env=ENV, timeout=300)
    provenance, records = assert_job(job, tmp_path, expect_inputs={"data.pt": digest})
    # 64 samples over 2 ranks, 2 epochs: each rank its own 32 a pass
    assert {rank: r.samples for rank, r in records.items()} == {0: 64, 1: 64}
    (subject,) = provenance.statement.subjects
    # accelerate's save_model writes the weights by the safetensors name: the folder is
    # the model (the name a user gives to from_pretrained and verify --artifact)
    assert subject.name == "out/final"
    verify_artifact_cli(job, tmp_path, [tmp_path / "out" / "final"])
