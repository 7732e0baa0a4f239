"""A software TPM (swtpm) on loopback, for tests and the demo.

Started with ``--flags not-need-init,startup-clear`` so it is usable at once;
its TCTI string goes into ``TPM2TOOLS_TCTI`` for tpm2-tools.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from slsa_dist.errors import InputError

__all__ = ["EkCa", "available", "provision", "swtpm", "tcti_env"]


def available() -> str | None:
    for tool in ("swtpm", "tpm2_quote"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian packages swtpm, swtpm-tools, tpm2-tools)"
    return None


@dataclass(frozen=True)
class EkCa:
    """A TPM state manufactured by swtpm_setup with EK certificates from a local CA."""

    state: Path
    root: Path  # the CA's self-signed root (PEM): what a verifier pins as an EK root
    chain: Path  # the intermediate that signed the EK certificates (PEM)


def provision(where: Path) -> EkCa:
    """Manufacture a TPM 2.0 state under ``where`` with RSA and ECC EKs and their
    certificates, issued by a new local CA of its own (swtpm-localca)."""
    if shutil.which("swtpm_setup") is None or shutil.which("swtpm_localca") is None:
        raise InputError("swtpm_setup/swtpm_localca not installed (Debian package swtpm-tools)")
    ca, state = where / "ca", where / "state"
    ca.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    (where / "localca.conf").write_text(
        f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\n"
        f"certserial = {ca}/certserial\n")
    (where / "localca.options").write_text("--platform-manufacturer slsa-dist-tests\n"
                                           "--platform-version 2.1\n--platform-model swtpm\n")
    (where / "setup.conf").write_text(
        f"create_certs_tool = {shutil.which('swtpm_localca')}\n"
        f"create_certs_tool_config = {where}/localca.conf\n"
        f"create_certs_tool_options = {where}/localca.options\nactive_pcr_banks = sha256\n")
    done = subprocess.run(
        ["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--create-ek-cert",
         "--create-platform-cert", "--config", str(where / "setup.conf"), "--overwrite"],
        capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise InputError(f"swtpm_setup: exit {done.returncode}: {done.stderr[-400:]}")
    return EkCa(state=state, root=ca / "swtpm-localca-rootca-cert.pem",
                chain=ca / "issuercert.pem")


def _free_ports() -> tuple[int, int]:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port, port + 1
    raise InputError("swtpm: could not find two adjacent free ports on loopback")


@contextmanager
def swtpm(state_dir: Path | None = None) -> Iterator[str]:
    """Run swtpm until the block ends; yields its TCTI string."""
    why = available()
    if why is not None:
        raise InputError(f"swtpm: {why}")
    with tempfile.TemporaryDirectory(prefix="slsa-swtpm-") as tmp:
        state = state_dir or Path(tmp)
        port, ctrl = _free_ports()
        proc = subprocess.Popen(
            [shutil.which("swtpm") or "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    error = proc.stderr.read().decode() if proc.stderr else ""
                    raise InputError(f"swtpm did not start: {error.strip()[-300:]}")
                time.sleep(0.02)
            yield f"swtpm:host=127.0.0.1,port={port}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def tcti_env() -> Iterator[str]:
    """A software TPM for the block, with ``TPM2TOOLS_TCTI`` pointing at it (restored after)."""
    import os

    with swtpm() as address:
        old = os.environ.get("TPM2TOOLS_TCTI")
        os.environ["TPM2TOOLS_TCTI"] = address
        try:
            yield address
        finally:
            if old is None:
                os.environ.pop("TPM2TOOLS_TCTI", None)
            else:
                os.environ["TPM2TOOLS_TCTI"] = old
