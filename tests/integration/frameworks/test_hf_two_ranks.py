"""A Hugging Face Trainer at 2 ranks under ``slsa-torchrun`` (#27 item 1).

Plain ``torchrun`` runs this script; under zero-code capture it once crashed
on every rank: accelerate's ``BatchSamplerShard`` has no ``.sampler`` and the
DataLoader hook read it. Capture must never break training: the job exits 0
and its bundle verifies, with what each rank consumed recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify import AllOf, Artifacts, Complete
from slsa_dist.verify._bundle import verify_bundle

from support.background import signing_key
from support.localjob import run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(400)]

SCRIPT = Path(__file__).parents[2] / "assets" / "unchanged" / "hf_trainer.py"


def test_a_trainer_at_two_ranks_runs_and_its_bundle_verifies(tmp_path: Path) -> None:
    signing_key(tmp_path)
    job = run_local_job(job_id="hf2", key=tmp_path / "signing.key", out=tmp_path,
                        script=SCRIPT, script_args=["--out", str(tmp_path / "hf"),
                                                    "--max-steps", "2"],
                        nproc=2, timeout=300,
                        env={"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    assert job.torchrun_exit == 0, job.torchrun_log.read_text()[-6000:]
    assert job.bundle.exists(), job.coordinator_log.read_text()[-3000:]
    provenance = verify_bundle(job.bundle, keys=[load_verifier(tmp_path / "signing.pub")]).provenance
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete, completeness
    records = {r.rank: r for r in provenance.rank_records()}
    assert set(records) == {0, 1}
    # Each rank counted the indices of the batches its own loader drew: 2 steps of 4
    # (accelerate draws one batch ahead), not the 64 of the whole dataset that the
    # batch sampler it shards from yields; the two ranks drew different batches.
    assert all(8 <= r.samples <= 12 for r in records.values()), \
        {r.rank: r.samples for r in records.values()}
    shards = {rank: r.shards[0] for rank, r in records.items() if r.shards}
    assert set(shards) == {0, 1}
    assert shards[0].index_digest != shards[1].index_digest
    for rank, shard in shards.items():
        (outer, inner) = shard.sampler["batchSamplers"]
        assert (outer["type"], outer["num_processes"], outer["process_index"]) == \
            ("BatchSamplerShard", 2, rank), shard.sampler
        assert inner["type"] == "BatchSampler"
    # #27 item 2: the subject is the model the Trainer saved (save_model's folder, its
    # weights and what save_pretrained wrote beside them), not the last file saved
    # (training_args.bin); that file is recorded, as a byproduct.
    assert [s.name for s in provenance.statement.subjects] == ["hf/final"]
    checkpoints = {c.name: c for c in provenance.checkpoints()}
    assert checkpoints["hf/final"].role == "final"
    assert {r["name"] for r in checkpoints["hf/final"].resources} >= {
        "model.safetensors", "training_args.bin"}
    assert checkpoints["hf/final/training_args.bin"].role == "intermediate"
    verify_bundle(job.bundle, keys=[load_verifier(tmp_path / "signing.pub")],
                  policy=AllOf(Artifacts(tmp_path / "hf" / "final"), Complete()))
    # nothing the job wrote is listed as its input
    inputs = [d.name for d in provenance.dependencies
              if d.annotations.get("slsadist_kind") == "input"]
    assert not [name for name in inputs if name and name.startswith("hf/")], inputs
