"""Harness for tests, fault scenarios and benchmarks: a coordinator on a background
event loop, one in a real process, and throwaway keys. Not a public API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slsa_dist.coordinator import Coordinator, FinalResult
from slsa_dist.keys import Signer


class CoordinatorThread:
    """Runs a Coordinator on its own event loop in a thread (for in-process tests)."""

    def __init__(self, *, listen: str = "127.0.0.1:0", tls: Path | None = None,
                 **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._listen = listen
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.coordinator: Coordinator | None = None
        self.port = 0

    def __enter__(self) -> CoordinatorThread:
        self._thread.start()

        async def start() -> int:
            self.coordinator = Coordinator(**self._kwargs)
            return await self.coordinator.start(self._listen, tls=self._tls)

        self.port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(30)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_finalized(self, timeout: float = 60) -> FinalResult:
        assert self.coordinator is not None
        return asyncio.run_coroutine_threadsafe(self.coordinator.wait_finalized(),
                                                self._loop).result(timeout)

    def finalize(self, reason: str = "request") -> FinalResult:
        assert self.coordinator is not None
        return asyncio.run_coroutine_threadsafe(self.coordinator.finalize(reason),
                                                self._loop).result(60)

    def __exit__(self, *exc: object) -> None:
        if self.coordinator is not None:
            asyncio.run_coroutine_threadsafe(self.coordinator.stop(0.5), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli() -> list[str]:
    return [sys.executable, "-m", "slsa_dist._cli"]


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
