"""One training job on this machine: a coordinator process and ``slsa-torchrun``.

Used by the demo and the tests; ``launch/local.sh`` does the same by hand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slsa_dist.errors import Error

__all__ = ["LocalJob", "coordinator_process", "run_command_job", "run_local_job"]


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
    torchrun_log = logs / f"{job_id}.torchrun.log"
    with coordinator_process(job_id=job_id, key=key, out=out, world_size=nproc) as (
            address, coordinator_log):
        job_env = {**os.environ, "SLSA_ARTIFACT_ROOT": str(out), "OMP_NUM_THREADS": "1",
                   **(env or {})}
        exit_code = _run_group(
            [sys.executable, "-m", "slsa_dist.integrations._torchrun", "--slsa-coordinator",
             address, "--slsa-job-id", job_id, "--slsa-spool-dir", str(out / "spool"),
             "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts),
             "--monitor-interval", "0.2",
             *(["--slsa-bootstrap", str(script)] if bootstrap
               else ["-m", "slsa_dist.exec", str(script)]),
             *script_args], env=job_env, log=torchrun_log, timeout=timeout, what=job_id)
    return LocalJob(bundle=out / "provenance" / f"{job_id}.intoto.jsonl",
                    torchrun_exit=exit_code, coordinator_log=coordinator_log,
                    torchrun_log=torchrun_log)


@contextlib.contextmanager
def coordinator_process(*, job_id: str, key: Path, out: Path,
                        world_size: int) -> Iterator[tuple[str, Path]]:
    """A coordinator process for ``job_id``: yields its address and log; on leaving,
    waits for it to write the bundle (``out/provenance``), then stops it.

    Raises:
        Error: the coordinator did not start in time.
    """
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port_file = out / f"{job_id}.port"
    port_file.unlink(missing_ok=True)
    coordinator_log = logs / f"{job_id}.coordinator.log"
    with coordinator_log.open("w") as clog:
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "slsa_dist.cli", "coordinator", "--job-id", job_id,
             "--listen", "127.0.0.1:0", "--port-file", str(port_file), "--key", str(key),
             "--out", str(out / "provenance"), "--world-size", str(world_size), "--linger", "1",
             "--plaintext"],
            stdout=clog, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if coordinator.poll() is not None or time.monotonic() > deadline:
                raise Error(f"coordinator for {job_id} did not start (see {coordinator_log})")
            time.sleep(0.05)
        yield port_file.read_text().strip(), coordinator_log
        coordinator.wait(timeout=120)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(10)
        port_file.unlink(missing_ok=True)


def _run_group(command: Sequence[str], *, env: Mapping[str, str], log: Path, timeout: float,
               what: str, cwd: Path | None = None) -> int:
    """Run ``command`` in a session of its own: on timeout the whole tree (a launcher and
    its workers) is killed, so a hung rank cannot outlive the job."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        process = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT,
                                   env=dict(env), cwd=cwd, start_new_session=True)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            raise Error(f"job {what}: {command[0]} did not finish in {timeout:.0f} s "
                        f"(see {log})") from None


def run_command_job(*, job_id: str, key: Path, out: Path, command: Sequence[str],
                    world_size: int = 2, env: Mapping[str, str] | None = None,
                    timeout: float = 300, cwd: Path | None = None) -> LocalJob:
    """Run ``command`` (a launcher slsa-dist does not run: ``python train.py`` whose
    framework starts its own processes, ``accelerate launch``) against a coordinator
    process, with ``SLSA_COORDINATOR`` and ``SLSA_JOB_ID`` in its environment, as a
    user would set them. ``torchrun_exit`` is the command's exit code.

    Raises:
        Error: the coordinator did not start, or the command did not finish in time.
    """
    log = out / "logs" / f"{job_id}.command.log"
    with coordinator_process(job_id=job_id, key=key, out=out, world_size=world_size) as (
            address, coordinator_log):
        job_env = {**os.environ, "SLSA_ARTIFACT_ROOT": str(out), "OMP_NUM_THREADS": "1",
                   "SLSA_COORDINATOR": address, "SLSA_JOB_ID": job_id,
                   "SLSA_SPOOL_DIR": str(out / "spool"), **(env or {})}
        exit_code = _run_group(command, env=job_env, log=log, timeout=timeout, what=job_id,
                               cwd=cwd)
    return LocalJob(bundle=out / "provenance" / f"{job_id}.intoto.jsonl",
                    torchrun_exit=exit_code, coordinator_log=coordinator_log, torchrun_log=log)
