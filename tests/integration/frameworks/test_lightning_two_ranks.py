"""Lightning at 2 ranks, as users run it (#27 item 3).

For both package names (``import lightning as L`` and ``pytorch_lightning``)
and both launchers: ``slsa-torchrun -m slsa_dist.exec`` (torchrun starts the
processes), and a plain ``python train.py`` whose ``Trainer(devices=2,
strategy="ddp")`` starts the second process itself, with ``SLSA_COORDINATOR``
set. Each process records as Lightning's own rank: never two rank 0s.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from support.background import signing_key
from support.frameworks import ASSETS, assert_job, data_file, verify_artifact_cli
from support.localjob import LocalJob, run_command_job, run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(400)]

SCRIPT = ASSETS / "lightning_fit.py"


@pytest.mark.parametrize("launcher", ["slsa-torchrun", "lightning", "lightning-exec"])
@pytest.mark.parametrize("package", ["lightning", "pytorch_lightning"])
def test_a_lightning_fit_at_two_ranks(tmp_path: Path, package: str, launcher: str) -> None:
    pytest.importorskip(package)
    signing_key(tmp_path)
    digest = data_file(tmp_path / "data.pt")
    labels = tmp_path / "labels.txt"
    labels.write_text("low high\n")
    arguments = ["--package", package, "--data", str(tmp_path / "data.pt"),
                 "--out", str(tmp_path / "fit"), "--labels", str(labels)]
    job_id = f"pl-{package}-{launcher}".replace("_", "-")
    job: LocalJob
    if launcher == "slsa-torchrun":
        job = run_local_job(job_id=job_id, key=tmp_path / "signing.key", out=tmp_path,
                            script=SCRIPT, script_args=arguments, nproc=2, timeout=300)
    elif launcher == "lightning":
        job = run_command_job(job_id=job_id, key=tmp_path / "signing.key", out=tmp_path,
                              command=[sys.executable, str(SCRIPT), *arguments],
                              world_size=2, timeout=300)
    else:  # -m slsa_dist.exec starts before Lightning's processes: it is told the world
        job = run_command_job(job_id=job_id, key=tmp_path / "signing.key", out=tmp_path,
                              command=[sys.executable, "-m", "slsa_dist.exec", str(SCRIPT),
                                       *arguments],
                              world_size=2, timeout=300, env={"SLSA_WORLD_SIZE": "2"})
    # the labels file every process read at the top level, before fit: an input, once
    provenance, records = assert_job(job, tmp_path, expect_inputs={
        "data.pt": digest, "labels.txt": hashlib.sha256(labels.read_bytes()).hexdigest()})
    assert sum(d.name == "labels.txt" for d in provenance.dependencies) == 1
    # every local rank's exit code, and the node's state from them
    nodes = provenance.node_records()
    final = [n.attempts[-1] for n in nodes]
    assert {int(r): c for a in final for r, c in a.exit_codes.items()} == {0: 0, 1: 0}, final
    assert {a.state for a in final} == {"SUCCEEDED"}, final
    # 64 samples, 2 ranks, 2 epochs: each rank drew its own half of each epoch
    assert {rank: r.samples for rank, r in records.items()} == {0: 64, 1: 64}
    for rank, record in records.items():
        (shard,) = record.shards or ()
        assert (shard.sampler["num_replicas"], shard.sampler["rank"]) == (2, rank), shard
    assert provenance.internal_parameters["framework"] == package
    hyper = provenance.external_parameters["hyperparameters"]
    assert (hyper["lr"], hyper["max_epochs"]) == (0.05, 2)  # JSON types kept
    (checkpoint,) = (tmp_path / "fit" / "checkpoints").glob("*.ckpt")
    (subject,) = provenance.statement.subjects
    assert subject.name == checkpoint.relative_to(tmp_path).as_posix()
    verify_artifact_cli(job, tmp_path, [checkpoint])
