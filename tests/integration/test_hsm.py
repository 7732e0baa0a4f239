"""Signing keys in an HSM: SoftHSM2 (Debian) through PKCS#11, a key generated inside the
token that never leaves it; the coordinator and `slsa-dist run` sign with `--key pkcs11:`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.errors import InputError
from slsa_dist.sign._keys import Verifier
from slsa_dist.sign._loaders import load_signer
from slsa_dist.verify._bundle import verify_bundle

from conftest import need

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh SoftHSM2 token holding one P-256 key pair generated inside it."""
    for tool in ("softhsm2-util", "pkcs11-tool"):
        need(shutil.which(tool) is not None, f"{tool} not installed (Debian softhsm2, opensc)")
    need(Path(MODULE).exists(), f"{MODULE} missing (Debian softhsm2)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    run = lambda *a: subprocess.run(a, capture_output=True, text=True, timeout=60,  # noqa: E731
                                    check=True)
    run("softhsm2-util", "--init-token", "--free", "--label", "slsa", "--pin", "1234",
        "--so-pin", "5678")
    run("pkcs11-tool", "--module", MODULE, "--token-label", "slsa", "--login", "--pin", "1234",
        "--keypairgen", "--key-type", "EC:prime256v1", "--label", "coordinator", "--id", "01")
    listed = run("pkcs11-tool", "--module", MODULE, "--token-label", "slsa", "--login",
                 "--pin", "1234", "--list-objects", "--type", "privkey").stdout
    public_der = tmp_path / "public.der"
    run("pkcs11-tool", "--module", MODULE, "--token-label", "slsa", "--read-object",
        "--type", "pubkey", "--label", "coordinator", "--output-file", str(public_der))
    from cryptography.hazmat.primitives import serialization

    public = tmp_path / "public.pem"
    public.write_bytes(serialization.load_der_public_key(public_der.read_bytes()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"uri": f"pkcs11:token=slsa;object=coordinator?module-path={MODULE}&pin-value=1234",
            "public": str(public), "listed": listed}


def test_the_key_was_made_inside_the_token_and_cannot_leave_it(token: dict[str, str]) -> None:
    assert "never extractable" in token["listed"], token["listed"]
    assert "sensitive" in token["listed"]


def test_the_coordinator_signs_through_pkcs11(token: dict[str, str], tmp_path: Path) -> None:
    signer = load_signer(token["uri"])
    public = Verifier.from_pem(Path(token["public"]).read_bytes())
    assert signer.keyid == public.keyid  # the token's own public key, read by pkcs11-tool
    with CoordinatorThread(job_id="hsm-1", signer=signer, out_dir=tmp_path / "out",
                           world_size=1, settle=0.2) as server:
        agent = Agent(coordinator=server.address, job_id="hsm-1", spool_dir=tmp_path / "spool",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n0"))
        agent.record_shard("s", {"sha256": "ab" * 32}, samples=3)
        agent.complete()
        assert agent.close(timeout=30)
        bundle = server.wait_finalized(60).bundle
    verify_bundle(bundle, keys=[public])
    # the journal's MAC key cannot come from the token: a 0600 file beside the journal
    key_file = tmp_path / "out" / "hsm-1.journal.sqlite.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32


def test_slsa_dist_run_signs_through_pkcs11(token: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "out.txt"
    done = subprocess.run(
        [sys.executable, "-m", "slsa_dist.cli", "run", "--output", str(output), "--key",
         token["uri"], "--bundle", str(tmp_path / "step.intoto.jsonl"), "--",
         sys.executable, "-c", f"open({str(output)!r}, 'w').write('x')"],
        capture_output=True, text=True, timeout=60, check=False, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    verified = subprocess.run(
        [sys.executable, "-m", "slsa_dist.cli", "verify", str(tmp_path / "step.intoto.jsonl"),
         "--key", token["public"], "--artifact", str(output)],
        capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_wrong_token_or_key_name_is_one_clear_line(token: dict[str, str]) -> None:
    with pytest.raises(InputError, match="expected a token labelled 'other', found none"):
        load_signer(token["uri"].replace("token=slsa", "token=other"))
    with pytest.raises(InputError, match="expected one private key matching"):
        load_signer(token["uri"].replace("object=coordinator", "object=nobody"))


@pytest.mark.torchrun
@pytest.mark.timeout(300)
def test_slsa_torchrun_with_a_key_in_the_token_signs_and_says_how_to_verify(
        token: dict[str, str], tmp_path: Path) -> None:
    """#27: ``--slsa-key pkcs11:...`` signed the bundle, then exited 1 with a traceback
    looking for ``<key>.pub``; the public half now comes from the token."""
    script = tmp_path / "train.py"
    script.write_text("import torch\ntorch.save({'w': torch.zeros(2)}, 'model.pt')\n")
    launcher = Path(sys.executable).parent / "slsa-torchrun"
    done = subprocess.run(
        [str(launcher), "--slsa-out", "prov", "--slsa-key", token["uri"],
         "--nproc-per-node", "1", str(script)],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("slsa-torchrun: wrote")]
    public = line.split(" --key ")[1].split()[0]
    assert Path(public).read_bytes() == Path(token["public"]).read_bytes()
    (bundle,) = (tmp_path / "prov").glob("*.intoto.jsonl")
    verify_bundle(bundle, keys=[Verifier.from_pem(Path(public).read_bytes())])
