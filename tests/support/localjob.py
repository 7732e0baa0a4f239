"""One training job on this machine: a coordinator process and ``slsa-torchrun``.

Used by the demo and the tests; ``launch/local.sh`` does the same by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slsa_dist.errors import Error

__all__ = ["LocalJob", "run_local_job"]


@dataclass(frozen=True)
class LocalJob:
    bundle: Path
    torchrun_exit: int
    coordinator_log: Path
    torchrun_log: Path


def run_local_job(
    *,
    job_id: str,
    key: Path,
    out: Path,
    script: Path,
    script_args: Sequence[str],
    nproc: int = 2,
    max_restarts: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    bootstrap: bool = False,
) -> LocalJob:
    """Run the job to the end; the coordinator writes ``out/provenance/<job>.intoto.jsonl``.

    The script runs under ``-m slsa_dist.exec``, or unchanged and directly with
    ``bootstrap`` (the plugin's opt-in sitecustomize starts each rank's agent).

    Raises:
        Error: the coordinator did not start or did not finish in time.
    """
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port_file = out / f"{job_id}.port"
    port_file.unlink(missing_ok=True)
    coordinator_log = logs / f"{job_id}.coordinator.log"
    torchrun_log = logs / f"{job_id}.torchrun.log"
    with coordinator_log.open("w") as clog:
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "slsa_dist.cli", "coordinator", "--job-id", job_id,
             "--listen", "127.0.0.1:0", "--port-file", str(port_file), "--key", str(key),
             "--out", str(out / "provenance"), "--world-size", str(nproc), "--linger", "1",
             "--plaintext"],
            stdout=clog, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if coordinator.poll() is not None or time.monotonic() > deadline:
                raise Error(f"coordinator for {job_id} did not start (see {coordinator_log})")
            time.sleep(0.05)
        address = port_file.read_text().strip()
        job_env = {**os.environ, "SLSA_ARTIFACT_ROOT": str(out), "OMP_NUM_THREADS": "1",
                   **(env or {})}
        with torchrun_log.open("w") as log:
            # A session of its own: on timeout the whole tree (torchrun and its workers)
            # is killed, so a hung rank cannot outlive the job.
            torchrun = subprocess.Popen(
                [sys.executable, "-m", "slsa_dist.integrations._torchrun", "--slsa-coordinator", address,
                 "--slsa-job-id", job_id, "--slsa-spool-dir", str(out / "spool"),
                 "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts),
                 "--monitor-interval", "0.2",
                 *(["--slsa-bootstrap", str(script)] if bootstrap
                   else ["-m", "slsa_dist.exec", str(script)]),
                 *script_args],
                stdout=log, stderr=subprocess.STDOUT, env=job_env, start_new_session=True)
            try:
                exit_code = torchrun.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(torchrun.pid, signal.SIGKILL)
                torchrun.wait(10)
                raise Error(f"job {job_id}: torchrun did not finish in {timeout:.0f} s "
                            f"(see {torchrun_log})") from None
        coordinator.wait(timeout=120)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(10)
        port_file.unlink(missing_ok=True)
    return LocalJob(bundle=out / "provenance" / f"{job_id}.intoto.jsonl",
                    torchrun_exit=exit_code, coordinator_log=coordinator_log,
                    torchrun_log=torchrun_log)
