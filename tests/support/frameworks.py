"""What every framework test asserts of a job run at 2 ranks (#27 item 3).

The bundle verifies with the job's key and is complete; every rank of the world
registered and ended successfully (exit code 0); each rank drew its own indices
(per-rank consumption); the inputs the test made are dependencies by digest.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import torch

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import RankRecord
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle

from support.localjob import LocalJob

__all__ = ["ASSETS", "assert_job", "data_file", "inputs", "verify_artifact_cli"]

ASSETS = Path(__file__).parents[1] / "assets" / "frameworks"


def data_file(path: Path, *, samples: int = 64, features: int = 4, seed: int = 0) -> str:
    """A tiny regression data set, ``torch.save``d: its sha256."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": x.sum(dim=1, keepdim=True)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inputs(provenance: Provenance) -> dict[str, str]:
    """Captured inputs (files and model folders read): name -> sha256."""
    return {d.name or "": d.digest.get("sha256", "") for d in provenance.dependencies
            if d.annotations.get("slsadist_kind") == "input"}


def _tail(job: LocalJob) -> str:
    return (job.torchrun_log.read_text(errors="replace")[-6000:] + "\n--- coordinator ---\n"
            + job.coordinator_log.read_text(errors="replace")[-3000:])


def assert_job(job: LocalJob, key_dir: Path, *, world: int = 2,
               expect_inputs: dict[str, str] | None = None,
               distinct_draws: bool = True) -> tuple[Provenance, dict[int, RankRecord]]:
    """The common assertions; returns the provenance and its rank records by rank."""
    assert job.torchrun_exit == 0, _tail(job)
    assert job.bundle.exists(), _tail(job)
    provenance = verify_bundle(job.bundle, keys=[load_verifier(key_dir / "signing.pub")]).provenance
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete, (completeness, _tail(job))
    assert provenance.world_size == world
    records = {r.rank: r for r in provenance.rank_records()}
    assert sorted(records) == list(range(world)), records  # never two rank 0s
    for rank, record in records.items():  # exit state per rank
        assert record.completed, record
        final = record.attempts[-1]
        assert (final.state, final.exit_code) == ("SUCCEEDED", 0), (rank, final)
    for rank, record in records.items():  # per-rank consumption
        assert record.samples > 0, (rank, record)
        assert record.shards, (rank, record)
    if distinct_draws:
        draws = {rank: tuple(s.index_digest for s in record.shards or ())
                 for rank, record in records.items()}
        assert len(set(draws.values())) == world, draws  # each rank drew its own indices
    if expect_inputs:
        found = inputs(provenance)
        for name, digest in expect_inputs.items():
            assert found.get(name) == digest, (name, found)
    return provenance, records


def verify_artifact_cli(job: LocalJob, key_dir: Path, artifacts: Iterable[Path]) -> None:
    """``slsa-dist verify BUNDLE --artifact PATH``, as a user runs it."""
    command = [sys.executable, "-m", "slsa_dist.cli", "verify", str(job.bundle), "--key",
               str(key_dir / "signing.pub")]
    for artifact in artifacts:
        command += ["--artifact", str(artifact)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
