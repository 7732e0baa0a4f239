"""``slsa-torchrun --slsa-out DIR``: one command from an unchanged script to a signed bundle.

Starts a coordinator of the job's own on loopback (a signing key is made in
``DIR/keys`` unless ``--slsa-key`` names one), runs torchrun with zero-code
capture (the bootstrap: the script runs as written), lets the coordinator
finalize when the launcher reports the last attempt's end (asking it to, if
it has not within a bound), and prints one closing line: the bundle, its
ranks, inputs and outputs, and the command that verifies it. Single node: for
several nodes, run ``slsa-dist coordinator`` yourself and pass
``--slsa-coordinator``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slsa_dist.errors import InputError
from slsa_dist.sign._formats import DEFAULT_FORMAT, bundle_path, formats_named

__all__ = ["run_with_own_coordinator"]

_LOCAL_BUILDER = "https://slsa-dist.dev/builders/local/v1"


def _world_size(parameters: Mapping[str, Any]) -> int:
    nnodes, nproc = parameters.get("nnodes", "1"), parameters.get("nprocPerNode", "1")
    if nnodes not in ("1", "1:1") or not str(nproc).isdigit():
        raise InputError(f"--slsa-out: expected one node and a number of processes "
                         f"(--nnodes 1 --nproc-per-node N), found --nnodes {nnodes} "
                         f"--nproc-per-node {nproc}; for several nodes run `slsa-dist "
                         f"coordinator` and pass --slsa-coordinator")
    return int(nproc)


def _key(out: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    key = out / "keys" / "signing.key"
    if not key.exists():
        from slsa_dist.sign._keys import keygen

        keygen(out / "keys")
    return key


def _public_key(out: Path, key: Path) -> Path:
    """The public half of ``key`` for verify: the ``.pub`` beside a PEM key, else the key
    itself (verify reduces it); for a key in an HSM (``pkcs11:``), written out once."""
    if str(key).startswith("pkcs11:"):
        from slsa_dist.sign._loaders import load_signer

        public = out / "keys" / "signing.pub"
        public.parent.mkdir(parents=True, exist_ok=True)
        public.write_bytes(load_signer(str(key)).public().public_pem())
        return public
    beside = key.with_suffix(".pub")
    return beside if beside.is_file() else key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(cli: list[str], log: Path) -> subprocess.Popen[bytes]:
    """The coordinator, started without waiting for it: torchrun starts meanwhile, and
    the node agent's first call waits for the coordinator (SLSA_CONNECT_WAIT)."""
    with log.open("ab") as handle:
        return subprocess.Popen(cli, stdout=handle, stderr=subprocess.STDOUT)


def _summary(bundle: Path, public: Path) -> str:
    from slsa_dist.sign._loaders import load_verifier
    from slsa_dist.verify._bundle import check_bundle

    provenance = check_bundle(bundle, keys=[load_verifier(public)]).provenance
    if provenance is None:
        return "could not be read back"
    inputs = [d for d in provenance.dependencies
              if d.annotations.get("slsadist_kind") in ("input", "dataset", "model")]
    completeness = provenance.completeness()
    outputs = "no outputs recorded" if completeness and completeness.outputs_recorded is False \
        else f"{len(provenance.statement.subjects)} output(s)"
    state = "complete" if completeness and completeness.complete else "INCOMPLETE"
    return (f"{len(provenance.rank_records())} rank(s), {len(inputs)} input(s), {outputs}, "
            f"{state}")


def run_with_own_coordinator(settings: Mapping[str, str], torchrun_args: Sequence[str], *,
                             parameters: Mapping[str, Any],
                             torchrun: Callable[[Sequence[str]], int]) -> int:
    """Run the whole job; returns the exit code (torchrun's, or 1 without a bundle).
    ``parameters`` are the launcher's, as ``launcher_parameters`` reads them."""
    out = Path(settings["SLSA_OUT"]).resolve()
    try:
        world = _world_size(parameters)
        out.mkdir(parents=True, exist_ok=True)
        key = _key(out, settings.get("SLSA_KEY"))
    except InputError as exc:
        print(f"slsa-torchrun: error: {exc}", file=sys.stderr)
        return 2
    job = settings.get("SLSA_JOB_ID") or f"job-{time.strftime('%Y%m%d-%H%M%S')}-" \
                                         f"{uuid.uuid4().hex[:6]}"
    log = out / f"{job}.coordinator.log"
    fmt = settings.get("SLSA_FORMAT", DEFAULT_FORMAT)
    address = f"127.0.0.1:{_free_port()}"
    cli = [sys.executable, "-m", "slsa_dist.cli", "coordinator", "--job-id", job,
           "--listen", address, "--key", str(key), "--out", str(out),
           "--world-size", str(world), "--plaintext", "--linger", "0", "--settle", "5",
           "--builder-id", _LOCAL_BUILDER, "--format", fmt]
    coordinator = _start(cli, log)
    os.environ.update({k: v for k, v in settings.items()
                       if k not in ("SLSA_OUT", "SLSA_KEY", "SLSA_FORMAT")})
    os.environ.update({"SLSA_COORDINATOR": address, "SLSA_JOB_ID": job, "SLSA_BOOTSTRAP": "1",
                       "SLSA_SPOOL_DIR": os.environ.get("SLSA_SPOOL_DIR", str(out / "spool"))})
    try:
        code = torchrun(torchrun_args)
        try:  # the coordinator finalizes once the launcher reported the last attempt
            coordinator.wait(30)
        except subprocess.TimeoutExpired:
            subprocess.run([sys.executable, "-m", "slsa_dist.cli", "finalize", "--coordinator",
                            address, "--job-id", job], capture_output=True, timeout=60,
                           check=False)
            coordinator.wait(60)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(10)
    written = [bundle_path(out, job, name) for name in formats_named(fmt)]
    bundle = written[0]
    if not bundle.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        print(f"slsa-torchrun: error: no bundle was written ({tail[0]}; see {log})",
              file=sys.stderr)
        return code or 1
    also = "".join(f" and {path}" for path in written[1:])
    public = _public_key(out, key)
    print(f"slsa-torchrun: wrote {bundle}{also}: {_summary(bundle, public)}; verify with: "
          f"slsa-dist verify {bundle} --key {public} --builder-id "
          f"{_LOCAL_BUILDER}", flush=True)
    return code
