"""FSDP2 (``fully_shard``) with Distributed Checkpoint at 2 ranks on CPU/gloo (#27 item 3).

A first job trains and ``dcp.save``s model and optimizer; a second job resumes
from that checkpoint (``dcp.load``): the previous checkpoint is one of its
inputs, by the digest the first job's provenance gave it. The DCP folder is a
checkpoint artifact holding every rank's files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.model._provenance import Provenance

from support.background import signing_key
from support.frameworks import ASSETS, assert_job, data_file, inputs, verify_artifact_cli
from support.localjob import LocalJob, run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(400)]

SCRIPT = ASSETS / "fsdp2_dcp.py"


def _job(root: Path, job_id: str, *extra: str) -> LocalJob:
    return run_local_job(job_id=job_id, key=root / "signing.key", out=root, script=SCRIPT,
                         script_args=["--data", str(root / "data.pt"), "--out",
                                      str(root / job_id), *extra], timeout=300)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory,
         ) -> tuple[Path, str, tuple[LocalJob, Provenance], tuple[LocalJob, Provenance]]:
    root = tmp_path_factory.mktemp("fsdp2")
    signing_key(root)
    digest = data_file(root / "data.pt")
    first = _job(root, "first")
    provenance, _ = assert_job(first, root, expect_inputs={"data.pt": digest})
    resumed = _job(root, "resumed", "--resume", str(root / "first" / "checkpoint"),
                   "--dcp-api")
    again, _ = assert_job(resumed, root, expect_inputs={"data.pt": digest})
    return root, digest, (first, provenance), (resumed, again)


def test_each_rank_consumed_its_own_half(jobs) -> None:  # type: ignore[no-untyped-def]
    _, _, (_, first), (_, resumed) = jobs
    for provenance in (first, resumed):
        for record in provenance.rank_records():
            assert record.samples == 64  # 64 samples / 2 ranks, 2 epochs
            (shard,) = record.shards or ()
            assert shard.sampler["type"] == "DistributedSampler"
            assert (shard.sampler["num_replicas"], shard.sampler["rank"]) == (2, record.rank)


def test_the_dcp_folder_is_a_checkpoint_with_every_ranks_files(jobs) -> None:  # type: ignore[no-untyped-def]
    root, _, (_, first), _ = jobs
    (checkpoint,) = [c for c in first.checkpoints() if c.name == "first/checkpoint"]
    names = {r["name"] if isinstance(r, dict) else r.name for r in checkpoint.resources}
    assert {".metadata", "__0_0.distcp", "__1_0.distcp"} <= names, names
    on_disk = {p.name for p in (root / "first" / "checkpoint").iterdir()}
    assert names == on_disk


def test_the_first_jobs_checkpoint_verifies(jobs) -> None:  # type: ignore[no-untyped-def]
    root, _, (job, first), _ = jobs
    (subject,) = first.statement.subjects
    assert subject.name == "first/checkpoint"
    verify_artifact_cli(job, root, [root / "first" / "checkpoint"])


def test_the_resumed_run_lists_the_previous_checkpoint_as_an_input(jobs) -> None:  # type: ignore[no-untyped-def]
    _, _, (_, first), (_, resumed) = jobs
    (subject,) = first.statement.subjects
    found = inputs(resumed)
    assert found.get("first/checkpoint") == subject.digest["sha256"], found
    # what the resumed job wrote is its output, never its input
    assert not [n for n in found if n.startswith("resumed/")], found



def test_the_resumed_runs_model_checkpoint_verifies(jobs) -> None:  # type: ignore[no-untyped-def]
    root, _, _, (job, _) = jobs
    verify_artifact_cli(job, root, [root / "resumed" / "checkpoint"])
