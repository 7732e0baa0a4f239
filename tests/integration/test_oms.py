"""OpenSSF Model Signing interop against the real model-signing package and CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.errors import VerificationError
from slsa_dist.sign import oms
from slsa_dist.sign.keys import Signer, load_signer, load_verifier

from support.background import signing_key
from support.models import sharded_model

MODEL_SIGNING = shutil.which("model_signing", path=str(Path(sys.executable).parent))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return sharded_model(tmp_path / "model")


def ms(*args: str) -> subprocess.CompletedProcess[str]:
    assert MODEL_SIGNING, "model_signing CLI is installed with the dev extra"
    return subprocess.run([MODEL_SIGNING, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_model_signing_cli_verifies_our_signature(model: Path, tmp_path: Path) -> None:
    key, public = signing_key(tmp_path)
    oms.sign_model(model, signer=load_signer(key), signature=tmp_path / "model.sig")
    done = ms("verify", "key", str(model), "--signature", str(tmp_path / "model.sig"),
              "--public_key", str(public))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification succeeded" in done.stdout


def test_model_signing_cli_rejects_our_signature_after_tampering(model: Path,
                                                                 tmp_path: Path) -> None:
    key, public = signing_key(tmp_path)
    oms.sign_model(model, signer=load_signer(key), signature=tmp_path / "model.sig")
    (model / "config.json").write_text('{"layers": 3}')
    done = ms("verify", "key", str(model), "--signature", str(tmp_path / "model.sig"),
              "--public_key", str(public))
    assert done.returncode != 0


def test_we_verify_a_signature_model_signing_wrote(model: Path, tmp_path: Path) -> None:
    key, public = signing_key(tmp_path)
    done = ms("sign", "key", str(model), "--signature", str(tmp_path / "theirs.sig"),
              "--private_key", str(key))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = oms.verify_model(model, signature=tmp_path / "theirs.sig",
                                key=load_verifier(public))
    assert len(manifest.resources) == 4
    (model / "shards" / "part-1.bin").unlink()
    with pytest.raises(VerificationError, match="missing: shards/part-1.bin"):
        oms.verify_model(model, signature=tmp_path / "theirs.sig", key=load_verifier(public))


def test_their_signature_with_another_key_is_rejected(model: Path, tmp_path: Path) -> None:
    key, _ = signing_key(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_public = signing_key(other)
    ms("sign", "key", str(model), "--signature", str(tmp_path / "theirs.sig"),
       "--private_key", str(key))
    with pytest.raises(VerificationError, match="key: the signature names key"):
        oms.verify_model(model, signature=tmp_path / "theirs.sig",
                         key=load_verifier(other_public))


def test_digest_json_root_equals_model_signing_digest(model: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    from model_signing import hashing

    assert cli_main(["digest", str(model), "--json", "--no-cache"]) == 0
    ours = json.loads(capsys.readouterr().out)["rootDigest"]["sha256"]
    root = hashlib.sha256()
    for descriptor in hashing.Config().hash(model).resource_descriptors():
        root.update(descriptor.digest.digest_value)
    assert ours == root.hexdigest()


def test_p384_signatures_verify_both_ways(model: Path, tmp_path: Path) -> None:
    """model_signing signs with a P-384 key (ECDSA with SHA-384); we verify it, and
    model_signing verifies ours made with the same kind of key."""
    signer = Signer.generate("ecdsa-p384")
    key, public = tmp_path / "p384.key", tmp_path / "p384.pub"
    key.write_bytes(signer.private_pem())
    public.write_bytes(signer.public().public_pem())
    done = ms("sign", "key", str(model), "--signature", str(tmp_path / "theirs.sig"),
              "--private_key", str(key))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = oms.verify_model(model, signature=tmp_path / "theirs.sig",
                                key=load_verifier(public))
    assert len(manifest.resources) == 4
    oms.sign_model(model, signer=signer, signature=tmp_path / "ours.sig")
    done = ms("verify", "key", str(model), "--signature", str(tmp_path / "ours.sig"),
              "--public_key", str(public))
    assert done.returncode == 0, done.stdout + done.stderr
    p256 = tmp_path / "p256"
    p256.mkdir()
    _, other = signing_key(p256)
    with pytest.raises(VerificationError, match="key: the signature names key"):
        oms.verify_model(model, signature=tmp_path / "theirs.sig", key=load_verifier(other))
