"""Zero-code capture (#15): an unchanged script yields provenance of what it read and saved."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, Complete, Outputs

from support.background import signing_key
from support.localjob import LocalJob, run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(300)]

UNCHANGED = Path(__file__).parents[2] / "assets" / "unchanged"


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalJob, Path]:
    root = tmp_path_factory.mktemp("zero-code")
    signing_key(root)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(256, 4, generator=generator)
    torch.save({"x": x, "y": x.sum(dim=1)}, root / "train-data.pt")
    job = run_local_job(job_id="unchanged", key=root / "signing.key", out=root,
                        script=UNCHANGED / "ddp_torch_save.py", timeout=180,
                        script_args=["--data", str(root / "train-data.pt"),
                                     "--out", str(root / "out")])
    assert job.torchrun_exit == 0, job.torchrun_log.read_text()
    return job, root


def test_the_data_file_it_loaded_is_a_dependency_by_digest(job: tuple[LocalJob, Path]) -> None:
    result, root = job
    provenance = verify_bundle(result.bundle, keys=[load_verifier(root / "signing.pub")]).provenance
    inputs = {d.name: d.digest["sha256"] for d in provenance.dependencies
              if d.annotations.get("slsadist_kind") == "input"}
    assert inputs.get("train-data.pt") == hashlib.sha256(
        (root / "train-data.pt").read_bytes()).hexdigest(), inputs
    assert not [n for n in inputs if "site-packages" in n or n.endswith(".py")], inputs


def test_the_saved_model_is_the_subject_and_verifies(job: tuple[LocalJob, Path]) -> None:
    result, root = job
    model = root / "out" / "model.pt"
    provenance = verify_bundle(result.bundle, keys=[load_verifier(root / "signing.pub")],
                               policy=AllOf(Artifacts(model), Complete())).provenance
    (subject,) = provenance.statement.subjects
    assert subject.name == "out/model.pt"
    assert subject.digest["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_verify_artifact_through_the_cli(job: tuple[LocalJob, Path]) -> None:
    result, root = job
    done = subprocess.run([sys.executable, "-m", "slsa_dist.cli", "verify", str(result.bundle),
                           "--key", str(root / "signing.pub"), "--artifact",
                           str(root / "out" / "model.pt")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_command_from_an_unchanged_script_to_a_verified_bundle(tmp_path: Path) -> None:
    """slsa-torchrun --slsa-out: its own coordinator and key, zero-code capture, one line."""
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(128, 4, generator=generator)
    torch.save({"x": x, "y": x.sum(dim=1)}, tmp_path / "data.pt")
    launcher = Path(sys.executable).parent / "slsa-torchrun"
    done = subprocess.run(
        [str(launcher), "--slsa-out", "prov", "--slsa-format", "both", "--nproc-per-node", "2",
         str(UNCHANGED / "ddp_torch_save.py"), "--data", "data.pt", "--out", "model"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("slsa-torchrun: wrote")]
    assert "2 rank(s), 1 input(s), 1 output(s), complete; verify with: slsa-dist verify" in line
    (bundle,) = (tmp_path / "prov").glob("*.intoto.jsonl")
    provenance = verify_bundle(bundle, keys=[load_verifier(tmp_path / "prov" / "keys" /
                                                           "signing.pub")],
                               policy=AllOf(Artifacts(tmp_path / "model" / "model.pt"),
                                            Complete(), Outputs())).provenance
    assert provenance.builder_id == "https://slsa-dist.dev/builders/local/v1"
    # --slsa-format both: the same signed envelope as a Sigstore bundle beside it
    (sigstore,) = (tmp_path / "prov").glob("*.sigstore.json")
    assert read_bundle(sigstore) == read_bundle(bundle)


def test_help_shows_the_slsa_flags_and_torchruns() -> None:
    launcher = Path(sys.executable).parent / "slsa-torchrun"
    done = subprocess.run([str(launcher), "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0
    for flag in ("--slsa-out", "--slsa-key", "--slsa-coordinator", "--slsa-job-id",
                 "--slsa-spool-dir", "--slsa-bootstrap", "--slsa-format", "--nproc-per-node",
                 "--max-restarts"):
        assert flag in done.stdout, flag


def test_each_rank_records_the_samples_its_sampler_yielded(job: tuple[LocalJob, Path]) -> None:
    result, root = job
    provenance = verify_bundle(result.bundle, keys=[load_verifier(root / "signing.pub")]).provenance
    ranks = provenance.rank_records()
    assert [r.rank for r in ranks] == [0, 1]
    for rank in ranks:
        assert rank.samples == 2 * 128  # 256 samples / 2 ranks, 2 epochs
        (shard,) = rank.shards or ()
        assert shard.name == "index:TensorDataset"
        assert shard.epochs == ((0, 1),)
        assert shard.sampler["type"] == "DistributedSampler"
        assert (shard.sampler["num_replicas"], shard.sampler["rank"]) == (2, rank.rank)
        assert len(shard.index_digest) == 64
    # the index space is no dependency: the data file it came from is the input
    assert not [d for d in provenance.dependencies if (d.uri or "").startswith("slsa-dist:")]


def test_helper_code_imported_from_beside_the_script_is_identified(
        job: tuple[LocalJob, Path]) -> None:
    result, root = job
    provenance = verify_bundle(result.bundle, keys=[load_verifier(root / "signing.pub")]).provenance
    code = {Path(d.uri or "").name: d.digest.get("sha256") for d in provenance.dependencies
            if d.annotations.get("slsadist_kind") == "code"}
    helpers = UNCHANGED / "helpers.py"
    assert code.get("helpers.py") == hashlib.sha256(helpers.read_bytes()).hexdigest(), code
    assert code.get("ddp_torch_save.py") is not None, code
    assert not [n for n in code if n in ("agent.py", "runtime.py")], code  # not slsa-dist's own


def _unreachable(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    launcher = Path(sys.executable).parent / "slsa-torchrun"
    return subprocess.run(
        [str(launcher), *extra, "--slsa-coordinator", "127.0.0.1:1", "--slsa-job-id", "gone",
         "--slsa-spool-dir", str(tmp_path / "spool"), "--nproc-per-node", "2",
         "-m", "slsa_dist.exec", str(Path(__file__).parents[2] / "assets" / "plain_train.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "SLSA_CONNECT_WAIT": "1",
             "SLSA_FLUSH_TIMEOUT": "2"})


def test_an_unreachable_coordinator_never_kills_training(tmp_path: Path) -> None:
    """#15 item 6: it used to abort the job with a long traceback."""
    done = _unreachable(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "training continues, its provenance may be incomplete (--slsa-required makes " \
           "this fatal)" in done.stderr
    assert f"they are kept in {tmp_path / 'spool' / 'gone'}" in done.stderr
    assert list((tmp_path / "spool" / "gone").glob("rank-*.spool"))  # nothing is lost


def test_slsa_required_makes_it_fatal_in_one_line(tmp_path: Path) -> None:
    done = _unreachable(tmp_path, "--slsa-required")
    assert done.returncode == 1
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("slsa-torchrun: error:")]
    assert len(errors) == 1
    assert "--slsa-required asks for provenance or no run" in errors[0]
    assert "Traceback" not in done.stderr
