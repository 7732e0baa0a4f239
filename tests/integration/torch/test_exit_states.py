"""Issue #27 item 5: each rank's exit is recorded with its real code, and the node's
attempt state agrees with its ranks' (real torchrun, gloo-free, 2 ranks).

Before: a rank that called ``sys.exit(3)`` under ``slsa_dist.init()`` (the atexit
hook) reported exit 0 SUCCEEDED; the node record said SUCCEEDED whatever its ranks'
exit codes (torchrun's agent-level SUCCEEDED means its run loop returned, not that
the workers succeeded); a rank stopped by torchrun reported 143 while torchrun saw
the wrapper exit 143 rather than die by SIGTERM; a SIGKILLed rank held the job open
until the coordinator's idle timeout; and verify said only "missing ranks".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_NODE, MEDIA_RANK
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle

from support.background import signing_key
from support.localjob import LocalJob, run_local_job

pytestmark = [pytest.mark.torchrun, pytest.mark.multiprocess, pytest.mark.timeout(200)]

SCRIPT = Path(__file__).parents[2] / "assets" / "exit_train.py"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exits")
    signing_key(root)
    return root


def _run(workdir: Path, tmp_path: Path, job_id: str, how: str, *,
         bootstrap: bool = False) -> LocalJob:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    job = run_local_job(job_id=job_id, key=workdir / "signing.key", out=workdir, script=SCRIPT,
                        script_args=[], timeout=90, bootstrap=bootstrap,
                        env={"SLSA_TEST_EXIT": how, "SLSA_TEST_BARRIER": str(barrier)})
    assert job.torchrun_exit != 0, job.torchrun_log.read_text()
    assert job.bundle.exists(), job.coordinator_log.read_text() + job.torchrun_log.read_text()
    return job


def _records(job: LocalJob) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    (envelope,) = read_bundle(job.bundle)
    provenance = Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))
    ranks = {r["rank"]: r["attempts"][-1] for r in provenance.records(MEDIA_RANK)}
    (node,) = provenance.records(MEDIA_NODE)
    (attempt,) = node["attempts"]
    return ranks, attempt


def _verify(job: LocalJob, workdir: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "slsa_dist.cli", "verify", str(job.bundle),
                           "--key", str(workdir / "signing.pub")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("bootstrap", [False, True], ids=["exec", "init-atexit"])
def test_sys_exit_3_on_every_rank_is_exit_3_and_a_failed_attempt(
        workdir: Path, tmp_path: Path, bootstrap: bool) -> None:
    job = _run(workdir, tmp_path, f"exit3-all-{int(bootstrap)}", "exit3", bootstrap=bootstrap)
    ranks, node = _records(job)
    # Each rank ended by sys.exit(3) itself. A rank torchrun stops (SIGTERM) while it is
    # still flushing may die by the signal before it reports (the atexit hook cannot
    # defer it): then it says nothing, never SUCCEEDED.
    reported = [(a["state"], a.get("exitCode")) for a in ranks.values()
                if a["state"] != "NO_COMPLETION_REPORTED"]
    assert reported, ranks
    assert set(reported) == {("FAILED", 3)}, ranks
    if not bootstrap:
        assert len(reported) == 2, ranks
    assert node["state"] == "FAILED", node
    assert set(node["exitCodes"]) == {"0", "1"}, node
    assert set(node["exitCodes"].values()) <= {3, -15}, node
    assert 3 in node["exitCodes"].values(), node
    out = _verify(job, workdir)
    assert "failed ranks: rank 0 attempt 0: exit " in out, out
    assert "rank 1 attempt 0: exit " in out, out


def test_sys_exit_3_on_rank_1_fails_it_and_rank_0_was_terminated(
        workdir: Path, tmp_path: Path) -> None:
    job = _run(workdir, tmp_path, "exit3-rank1", "exit3@1")
    ranks, node = _records(job)
    assert (ranks[1]["state"], ranks[1]["exitCode"]) == ("FAILED", 3)
    # torchrun stopped rank 0 with SIGTERM: it reports that, and dies by it, so the
    # launcher sees the same -15 it reports for a rank it terminated
    assert (ranks[0]["state"], ranks[0]["exitCode"]) == ("TERMINATED", -15)
    assert (node["state"], node["exitCodes"]) == ("FAILED", {"0": -15, "1": 3})
    out = _verify(job, workdir)
    assert "rank 1 attempt 0: exit 3 (FAILED)" in out, out
    assert "rank 0 attempt 0: exit -15 (SIGTERM, TERMINATED)" in out, out


def test_an_uncaught_exception_is_exit_1(workdir: Path, tmp_path: Path) -> None:
    job = _run(workdir, tmp_path, "raise-rank1", "raise@1")
    assert "RuntimeError: rank 1: injected failure" in job.torchrun_log.read_text()
    ranks, node = _records(job)
    assert (ranks[1]["state"], ranks[1]["exitCode"]) == ("FAILED", 1)
    assert (ranks[0]["state"], ranks[0]["exitCode"]) == ("TERMINATED", -15)
    assert (node["state"], node["exitCodes"]) == ("FAILED", {"0": -15, "1": 1})
    out = _verify(job, workdir)
    assert "rank 1 attempt 0: exit 1 (FAILED)" in out, out


def test_a_sigkilled_rank_is_recorded_from_its_launcher(workdir: Path, tmp_path: Path) -> None:
    """The OOM killer's SIGKILL: the rank cannot say a word; its launcher saw -9, and
    the job ends there (before: the coordinator waited for its idle timeout)."""
    job = _run(workdir, tmp_path, "sigkill-rank1", "sigkill@1")
    ranks, node = _records(job)
    assert ranks[1]["state"] == "NO_COMPLETION_REPORTED"
    assert "exitCode" not in ranks[1]
    assert (ranks[0]["state"], ranks[0]["exitCode"]) == ("TERMINATED", -15)
    assert (node["state"], node["exitCodes"]) == ("FAILED", {"0": -15, "1": -9})
    out = _verify(job, workdir)
    assert "rank 1 attempt 0: no completion reported; node " in out, out
    assert "saw exit -9 (SIGKILL)" in out, out
