"""Harness for tests, fault scenarios and benchmarks: a coordinator in a real
process, free ports and throwaway keys. (The in-process runner,
:class:`~slsa_dist.collect._coordinator.CoordinatorThread`, is public.)"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from slsa_dist.sign._keys import Signer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli() -> list[str]:
    return [sys.executable, "-m", "slsa_dist.cli"]


@contextlib.contextmanager
def coordinator_process(tmp: Path, *, job_id: str, port: int, key: Path, world_size: int,
                        settle: float = 0.5, log_name: str = "coordinator.log"
                        ) -> Iterator[subprocess.Popen[bytes]]:
    """``slsa-dist coordinator`` as a real process; killed if still alive at exit."""
    log = (tmp / log_name).open("ab")
    proc = subprocess.Popen(
        [*cli(), "coordinator", "--job-id", job_id, "--listen", f"127.0.0.1:{port}",
         "--key", str(key), "--out", str(tmp / "out"), "--world-size", str(world_size),
         "--settle", str(settle), "--plaintext"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        log.close()


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"coordinator exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def signing_key(tmp: Path) -> tuple[Path, Path]:
    signer = Signer.generate()
    private, public = tmp / "signing.key", tmp / "signing.pub"
    private.write_bytes(signer.private_pem())
    os.chmod(private, 0o600)
    public.write_bytes(signer.public().public_pem())
    return private, public
