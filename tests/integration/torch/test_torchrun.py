"""Real torchrun jobs (gloo, 2 ranks) under slsa-torchrun, each bounded in time.

Failures are injected before the first collective: gloo can hang when a rank
dies after one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_CHECKPOINT, MEDIA_NODE, MEDIA_RANK
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, Complete

from examples.demo import data as demo_data
from support.background import signing_key
from support.localjob import LocalJob, run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(240)]

TRAIN = Path(demo_data.__file__).parent / "train.py"
FAILING_TRAIN = Path(__file__).parents[2] / "assets" / "failing_train.py"


def provenance_of(job: LocalJob) -> Provenance:
    assert job.bundle.exists(), job.coordinator_log.read_text() + job.torchrun_log.read_text()
    (envelope,) = read_bundle(job.bundle)
    return Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("torchrun")
    demo_data.main(["--out", str(root / "data")])
    signing_key(root)
    return root


@pytest.fixture(scope="module")
def two_ranks(workdir: Path) -> LocalJob:
    return run_local_job(job_id="two-ranks", key=workdir / "signing.key", out=workdir,
                         script=TRAIN, timeout=180,
                         script_args=["--data", str(workdir / "data"), "--out",
                                      str(workdir / "train"), "--epochs", "2"])


def test_two_ranks_give_one_verified_provenance(two_ranks: LocalJob, workdir: Path) -> None:
    assert two_ranks.torchrun_exit == 0, two_ranks.torchrun_log.read_text()
    provenance = verify_bundle(two_ranks.bundle, keys=[load_verifier(workdir / "signing.pub")],
                               policy=AllOf(Artifacts(workdir / "train" / "final"), Complete())).provenance
    assert provenance.world_size == 2
    assert [s.name for s in provenance.statement.subjects] == ["train/final"]
    datasets = [d for d in provenance.dependencies if d.annotations["slsadist_kind"] == "dataset"]
    assert sorted(d.name or "" for d in datasets) == [f"data/digits-0000{i}.npz" for i in range(4)]
    (node,) = provenance.records(MEDIA_NODE)
    assert [a["state"] for a in node["attempts"]] == ["SUCCEEDED"]
    assert node["attempts"][0]["exitCodes"] == {"0": 0, "1": 0}


def test_internal_parameters_record_launcher_rendezvous_restarts_and_coordinator(
        two_ranks: LocalJob) -> None:
    """#14 item 19: docs/buildtype.md promises these; torchrun jobs recorded none."""
    internal = provenance_of(two_ranks).internal_parameters
    assert internal["launcher"] == "torchrun"
    assert internal["maxRestarts"] == 0
    assert internal["rendezvous"]["backend"] in ("static", "c10d")
    assert internal["nprocPerNode"] == "2"
    assert internal["coordinator"]["transport"] == "plaintext-loopback"
    assert internal["coordinator"]["journal"].endswith("two-ranks.journal.sqlite")


def test_each_rank_records_its_shards_compactly(two_ranks: LocalJob) -> None:
    ranks = {r["rank"]: r for r in provenance_of(two_ranks).records(MEDIA_RANK)}
    for rank in ranks.values():
        assert rank["completed"] is True
        # The workers reported through torchrun's node relay, and the record says so.
        assert [a["relayedBy"] for a in rank["attempts"]] == [rank["node"]]
        assert rank["shards"]
        for shard in rank["shards"]:
            assert shard["epochs"] == [[0, 1]]
            assert len(shard["indexDigest"]) == 64
            assert shard["sampler"]["num_replicas"] == 2
            assert shard["sampler"]["rank"] == rank["rank"]
    # DistributedSampler pads to equal halves: together the ranks read every sample each epoch.
    total = sum(r["samples"] for r in ranks.values())
    assert total == 2 * 1798  # 1,797 samples, padded to 1,798, over 2 epochs


def test_dcp_save_is_digested_on_both_ranks(two_ranks: LocalJob, workdir: Path) -> None:
    provenance = provenance_of(two_ranks)
    final = next(r for r in provenance.records(MEDIA_CHECKPOINT) if r["name"] == "train/final")
    assert final["writtenBy"] == {".metadata": 0, "__0_0.distcp": 0, "__1_0.distcp": 1}
    assert final["expectedFiles"] == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    on_disk = {p.name for p in (workdir / "train" / "final").iterdir()}
    assert on_disk == set(final["writtenBy"])
    import hashlib

    for resource in final["resources"]:
        path = workdir / "train" / "final" / resource["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == resource["digest"]


def test_a_deleted_checkpoint_shard_is_detected_by_verify(two_ranks: LocalJob,
                                                         workdir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "train" / "final"
    shutil.copytree(workdir / "train" / "final", copy)
    (copy / "__1_0.distcp").unlink()
    done = subprocess.run([sys.executable, "-m", "slsa_dist.cli", "verify", str(two_ranks.bundle),
                           "--key", str(workdir / "signing.pub"), "--artifact", str(copy)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "missing: __1_0.distcp" in done.stdout


def test_a_forced_restart_is_recorded_as_two_attempts(workdir: Path) -> None:
    job = run_local_job(job_id="restart", key=workdir / "signing.key", out=workdir,
                        script=FAILING_TRAIN, max_restarts=1, timeout=180,
                        env={"SLSA_TEST_FAIL_RANK": "1"},
                        script_args=["--data", str(workdir / "data"), "--out",
                                     str(workdir / "restart"), "--epochs", "1"])
    assert job.torchrun_exit == 0, job.torchrun_log.read_text()
    assert "injected failure on attempt 0" in job.torchrun_log.read_text()
    provenance = verify_bundle(job.bundle, keys=[load_verifier(workdir / "signing.pub")]).provenance
    ranks = {r["rank"]: r for r in provenance.records(MEDIA_RANK)}
    assert [a["attempt"] for a in ranks[1]["attempts"]] == [0, 1]
    assert ranks[1]["attempts"][0]["exitCode"] == 3
    assert ranks[1]["attempts"][0]["state"] == "FAILED"
    assert ranks[1]["attempts"][1]["exitCode"] == 0
    assert [a["attempt"] for a in ranks[0]["attempts"]] == [0, 1]
    assert (ranks[0]["attempts"][0]["state"], ranks[0]["attempts"][0]["exitCode"]) == (
        "TERMINATED", -15)
    (node,) = provenance.records(MEDIA_NODE)
    assert [(a["attempt"], a["state"]) for a in node["attempts"]] == [(0, "RESTARTED"),
                                                                       (1, "SUCCEEDED")]


def test_an_unchanged_script_is_captured_with_the_opt_in_bootstrap(workdir: Path) -> None:
    script = Path(__file__).parents[2] / "assets" / "plain_train.py"
    job = run_local_job(job_id="bootstrap", key=workdir / "signing.key", out=workdir,
                        script=script, script_args=[], bootstrap=True, timeout=180)
    assert job.torchrun_exit == 0, job.torchrun_log.read_text()
    provenance = verify_bundle(job.bundle, keys=[load_verifier(workdir / "signing.pub")]).provenance
    ranks = {r["rank"]: r for r in provenance.records(MEDIA_RANK)}
    assert sorted(ranks) == [0, 1]
    assert all(r["completed"] for r in ranks.values())
    assert provenance.external_parameters["entryPoint"].endswith("plain_train.py")
