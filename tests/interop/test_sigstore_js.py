"""Sigstore's own JavaScript verifier (@sigstore/verify, from npm) verifies the Sigstore
bundles slsa-dist writes, and rejects a tampered one; slsa-dist verify reads them too."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer

from conftest import need

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]

JS = Path(__file__).parent / "js"


def js_verify(bundle: Path, public: Path, hint: str) -> subprocess.CompletedProcess[str]:
    need(shutil.which("node") is not None, "node not installed (Node 20)")
    need((JS / "node_modules" / "@sigstore" / "verify").exists(),
         "@sigstore/verify not installed (make installs it: npm ci in tests/interop/js)")
    return subprocess.run(["node", str(JS / "verify_bundle.mjs"), str(bundle), str(public), hint],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Signer]:
    """A coordinator writing both formats for a one-rank job."""
    out = tmp_path_factory.mktemp("sigstore")
    signer = Signer.generate()
    public = out / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    with CoordinatorThread(job_id="sig-1", signer=signer, out_dir=out, world_size=1,
                           settle=0.2, formats=("intoto", "sigstore")) as server:
        agent = Agent(coordinator=server.address, job_id="sig-1", spool_dir=out / "spool",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n0"))
        agent.record_shard("s", {"sha256": "ab" * 32}, samples=3)
        agent.complete()
        assert agent.close(timeout=30)
        server.wait_finalized(60)
    return out, public, signer


def test_the_coordinators_sigstore_bundle_verifies_with_sigstores_js_verifier(
        job: tuple[Path, Path, Signer]) -> None:
    out, public, signer = job
    bundle = out / "sig-1.sigstore.json"
    done = js_verify(bundle, public, signer.keyid)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "verified"
    # the same signed envelope as the JSON Lines bundle beside it
    assert read_bundle(bundle) == read_bundle(out / "sig-1.intoto.jsonl")
    verified = subprocess.run([sys.executable, "-m", "slsa_dist.cli", "verify", str(bundle),
                               "--key", str(public)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_tampered_bundle_or_another_key_is_rejected_by_the_js_verifier(
        job: tuple[Path, Path, Signer], tmp_path: Path) -> None:
    out, public, signer = job
    data = json.loads((out / "sig-1.sigstore.json").read_text())
    statement = json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "00" * 32  # another model
    data["dsseEnvelope"]["payload"] = base64.b64encode(
        json.dumps(statement).encode()).decode()
    tampered = tmp_path / "tampered.sigstore.json"
    tampered.write_text(json.dumps(data))
    done = js_verify(tampered, public, signer.keyid)
    assert done.returncode == 1
    assert done.stdout.startswith("failed: SIGNATURE_ERROR")
    other = tmp_path / "other.pub"
    other.write_bytes(Signer.generate().public().public_pem())
    assert js_verify(out / "sig-1.sigstore.json", other, signer.keyid).returncode == 1
