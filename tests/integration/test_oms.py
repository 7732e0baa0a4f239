"""OpenSSF Model Signing interop against the real model-signing package and CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.sign import _oms as oms
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._loaders import load_signer, load_verifier

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


def verify_theirs(model: Path, key: Path, public: Path, signature: Path) -> None:
    """model_signing signs ``model`` with ``key``; we verify it with ``public``."""
    done = ms("sign", "key", str(model), "--signature", str(signature),
              "--private_key", str(key))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = oms.verify_model(model, signature=signature, key=load_verifier(public))
    assert len(manifest.resources) == 4


def test_we_verify_a_signature_model_signing_wrote(model: Path, tmp_path: Path) -> None:
    key, public = signing_key(tmp_path)
    verify_theirs(model, key, public, tmp_path / "theirs.sig")
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
    verify_theirs(model, key, public, tmp_path / "theirs.sig")
    oms.sign_model(model, signer=signer, signature=tmp_path / "ours.sig")
    done = ms("verify", "key", str(model), "--signature", str(tmp_path / "ours.sig"),
              "--public_key", str(public))
    assert done.returncode == 0, done.stdout + done.stderr
    p256 = tmp_path / "p256"
    p256.mkdir()
    _, other = signing_key(p256)
    with pytest.raises(VerificationError, match="key: the signature names key"):
        oms.verify_model(model, signature=tmp_path / "theirs.sig", key=load_verifier(other))


def certificate_chain(tmp_path: Path, *, usage: bool = True,
                      rsa_leaf: bool = False) -> dict[str, Path]:
    """root -> intermediate -> leaf (P-384, or RSA; code signing), as PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def issue(subject: str, issuer: str, key: Any,
              issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=not ca and usage, content_commitment=False,
                       key_encipherment=not usage, data_encipherment=False,
                       key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                       decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False))
        if not ca and usage:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        return builder.sign(issuer_key, hashes.SHA384())

    root_key, middle_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    if rsa_leaf:
        from cryptography.hazmat.primitives.asymmetric import rsa

        leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = issue("slsa-dist test root", "slsa-dist test root", root_key, root_key, True)
    middle = issue("slsa-dist test intermediate", "slsa-dist test root", middle_key, root_key,
                   True)
    leaf = issue("model signer", "slsa-dist test intermediate", leaf_key, middle_key, False)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    paths = {name: tmp_path / f"{name}.pem" for name in ("root", "chain", "leaf", "key")}
    paths["root"].write_bytes(pem(root))
    paths["chain"].write_bytes(pem(middle) + pem(root))
    paths["leaf"].write_bytes(pem(leaf))
    paths["key"].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return paths


def sign_with_certificate(model: Path, chain: dict[str, Path], signature: Path) -> None:
    done = ms("sign", "certificate", str(model), "--signature", str(signature),
              "--private_key", str(chain["key"]), "--signing_certificate", str(chain["leaf"]),
              "--certificate_chain", str(chain["chain"]))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_certificate_chain_signature_verifies_to_its_root_and_not_another(
        model: Path, tmp_path: Path) -> None:
    chain = certificate_chain(tmp_path)
    signature = tmp_path / "cert.sig"
    sign_with_certificate(model, chain, signature)
    manifest = oms.verify_model(model, signature=signature, roots=chain["root"])
    assert len(manifest.resources) == 4
    (tmp_path / "stranger").mkdir()
    stranger = certificate_chain(tmp_path / "stranger")
    with pytest.raises(VerificationError, match="expected a path from 'CN=model signer' to a "
                                                "trusted root"):
        oms.verify_model(model, signature=signature, roots=stranger["root"])
    with pytest.raises(InputError, match="expected --root"):
        oms.verify_model(model, signature=signature, key=load_verifier(
            signing_key(tmp_path / "stranger")[1]))
    # the same through the command line
    assert cli_main(["oms", "verify", str(model), "--signature", str(signature),
                     "--root", str(chain["root"])]) == 0


def test_a_leaf_not_allowed_to_sign_is_refused(model: Path, tmp_path: Path) -> None:
    chain = certificate_chain(tmp_path, usage=False)
    signature = tmp_path / "cert.sig"
    sign_with_certificate(model, chain, signature)
    with pytest.raises(VerificationError, match="expected a leaf allowed to sign"):
        oms.verify_model(model, signature=signature, roots=chain["root"])


def test_a_leaf_with_an_rsa_key_is_one_clear_error(tmp_path: Path) -> None:
    """The chain validates, but the leaf's key is of a kind we do not verify with."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain = certificate_chain(tmp_path, rsa_leaf=True)
    certificates = [*x509.load_pem_x509_certificates(chain["leaf"].read_bytes()),
                    *x509.load_pem_x509_certificates(chain["chain"].read_bytes())[:1]]
    material = {"x509CertificateChain": {"certificates": [
        {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
        for c in certificates]}}
    roots = x509.load_pem_x509_certificates(chain["root"].read_bytes())
    with pytest.raises(InputError, match="expected an ECDSA P-256, P-384 or Ed25519 public "
                                         "key, found RSAPublicKey"):
        oms._chain_key(material, roots, tmp_path / "cert.sig")
