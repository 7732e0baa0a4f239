"""OpenSSF Model Signing (OMS) v1.0 signature files, in both directions.

* :func:`sign_model` writes a signature file (a Sigstore bundle v0.3 holding a
  DSSE envelope, key-based, no transparency log) that
  ``model_signing verify key MODEL --signature FILE --public_key PUB`` accepts.
* :func:`verify_model` checks a signature file written by ``model_signing
  sign key`` (or by :func:`sign_model`): the signature over the exact payload
  bytes, the key hint, the predicate, and every file of the model on disk
  against the signed manifest, re-hashed with the signed serialization. A file
  from ``model_signing sign certificate`` is checked against trusted roots
  instead of a key: the certificate chain it carries must lead to one of them
  (``cryptography``'s X.509 path validation, at the leaf's notBefore, as
  model_signing does without a timestamp), the leaf must allow signing
  (KeyUsage digitalSignature or ExtendedKeyUsage codeSigning), and the leaf's
  key must verify the envelope.

The manifest is slsa-dist's own (:func:`slsa_dist.digest._manifest.digest_path`), so
the OMS subject digest is the same root digest slsa-dist provenance uses for
the model: one identity in both ecosystems.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from slsa_dist._internal import canonical
from slsa_dist.digest._manifest import DEFAULT_SHARD_SIZE, Manifest, digest_path
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.model._statement import STATEMENT_TYPE
from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae, verify_envelope
from slsa_dist.sign._keys import Signer, Verifier

__all__ = ["BUNDLE_MEDIA_TYPE", "OMS_PREDICATE_TYPE", "sign_model", "verify_model"]

OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _key_hint(verifier: Verifier) -> str:
    """OMS's key hint: SHA-256 of the public key's PEM bytes, hex."""
    return hashlib.sha256(verifier.public_pem()).hexdigest()


def statement_for(manifest: Manifest) -> dict[str, Any]:
    """The OMS v1.0 in-toto Statement for ``manifest``."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.name, "digest": {"sha256": manifest.root_digest}}],
        "predicateType": OMS_PREDICATE_TYPE,
        "predicate": {
            "serialization": manifest.serialization(),
            # model_signing's label for shard digests: "<hash>-sharded-<shard size>"
            "resources": [{"name": r.name, "digest": r.digest, "algorithm": (
                              f"{r.algorithm}-sharded-{manifest.shard_size}"
                              if manifest.method == "shards" else r.algorithm)}
                          for r in manifest.resources],
        },
    }


def sign_model(model: str | os.PathLike[str], *, signer: Signer,
               signature: str | os.PathLike[str], manifest: Manifest | None = None) -> Path:
    """Hash ``model`` (unless ``manifest`` is given) and write an OMS signature file.

    Raises:
        InputError: the key is not ECDSA (OMS key signing is ECDSA-only).
    """
    if not signer.algorithm.startswith("ecdsa-"):
        raise InputError(f"OMS signing key: expected ECDSA (P-256 or P-384), found "
                         f"{signer.algorithm}")
    manifest = manifest or digest_path(model)
    payload = canonical.dumps_bytes(statement_for(manifest))
    sig = signer.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": _key_hint(signer.public())},
                                 "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(payload).decode(),
                         "payloadType": IN_TOTO_PAYLOAD_TYPE,
                         "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]},
    }
    path = Path(signature)
    path.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
    return path


def _expected(predicate: dict[str, Any], name: str) -> Manifest:
    serialization = predicate.get("serialization")
    resources = predicate.get("resources")
    if not isinstance(serialization, dict) or not isinstance(resources, list):
        raise VerificationError("OMS predicate: expected 'serialization' and 'resources', "
                                f"found {sorted(predicate)}")
    try:
        return Manifest.from_oms(name=name, serialization=serialization, resources=resources)
    except InputError as exc:
        raise VerificationError(f"OMS predicate: {exc}") from None


def _chain_key(material: dict[str, Any], roots: list[Any], path: Path) -> Verifier:
    """The leaf's key, once the bundle's certificate chain validates to ``roots``."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from cryptography.x509.verification import (
        ExtensionPolicy,
        PolicyBuilder,
        Store,
    )
    from cryptography.x509.verification import (
        VerificationError as PathError,
    )

    raw = [c.get("rawBytes", "") for c in
           (material.get("x509CertificateChain") or {}).get("certificates", [])] \
        or [(material.get("certificate") or {}).get("rawBytes", "")]
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(r)) for r in raw if r]
    except ValueError as exc:
        raise InputError(f"signature {path}: expected DER certificates, found {exc}") from None
    if not chain:
        raise InputError(f"signature {path}: expected a certificate chain, found none")
    leaf, intermediates = chain[0], chain[1:]
    verifier = PolicyBuilder().store(Store(roots)).time(leaf.not_valid_before_utc) \
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                            ee_policy=ExtensionPolicy.permit_all()).build_client_verifier()
    try:
        verifier.verify(leaf, intermediates)
    except PathError as exc:
        raise VerificationError(f"certificate chain: expected a path from "
                                f"{leaf.subject.rfc4514_string()!r} to a trusted root, found "
                                f"none ({exc})") from None
    extensions = {type(e.value): e.value for e in leaf.extensions}
    usage, extended = extensions.get(x509.KeyUsage), extensions.get(x509.ExtendedKeyUsage)
    if not ((usage is not None and usage.digital_signature)
            or (extended is not None and ExtendedKeyUsageOID.CODE_SIGNING in extended)):
        raise VerificationError("certificate: expected a leaf allowed to sign (KeyUsage "
                                "digitalSignature or ExtendedKeyUsage codeSigning), found "
                                "neither")
    from cryptography.hazmat.primitives import serialization

    # through Verifier.from_pem: a leaf key of another kind (RSA) is one clear error
    return Verifier.from_pem(leaf.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        source=f"signing certificate {leaf.subject.rfc4514_string()!r}")


def verify_model(model: str | os.PathLike[str], *, signature: str | os.PathLike[str],
                 key: Verifier | None = None,
                 roots: str | os.PathLike[str] | None = None) -> Manifest:
    """Verify an OMS key-signed signature file against ``model`` on disk.

    Returns:
        The manifest of the model as re-hashed.

    Raises:
        InputError: the signature file is not an OMS bundle.
        VerificationError: wrong key, bad signature, or the model differs.
    """
    path = Path(signature)
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"signature: expected a file at {path}, found none") from None
    except ValueError as exc:
        raise InputError(f"signature {path}: expected JSON, found {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        found = bundle.get("mediaType") if isinstance(bundle, dict) else type(bundle).__name__
        raise InputError(f"signature {path}: expected mediaType {BUNDLE_MEDIA_TYPE!r}, "
                         f"found {found!r}")
    material = bundle.get("verificationMaterial") or {}
    if "publicKey" not in material:  # a certificate (chain): trust comes from the roots
        if roots is None:
            raise InputError(f"signature {path}: carries a certificate chain; expected "
                             "--root (trusted root certificates, PEM), found a key only")
        from cryptography import x509

        try:
            trusted = x509.load_pem_x509_certificates(Path(roots).read_bytes())
        except (OSError, ValueError) as exc:
            raise InputError(f"root certificates {roots}: expected PEM certificates, found "
                             f"{exc}") from None
        key = _chain_key(material, trusted, path)
    if key is None:
        raise InputError(f"signature {path}: names a public key; expected --key, found "
                         "--root only")
    hint = material.get("publicKey", {}).get("hint")
    if hint and hint != _key_hint(key):
        raise VerificationError(f"key: the signature names key {hint[:16]}..., "
                                f"found {_key_hint(key)[:16]}... given")
    raw = bundle.get("dsseEnvelope")
    if not isinstance(raw, dict):
        raise InputError(f"signature {path}: expected a dsseEnvelope, found none")
    # OMS leaves keyid empty; ours is only a search hint, so the envelope verifies as is.
    payload = verify_envelope(Envelope.from_dict(raw), [key])  # exact bytes, before parsing
    statement = json.loads(payload)
    if statement.get("predicateType") != OMS_PREDICATE_TYPE:
        raise VerificationError(f"predicateType: expected {OMS_PREDICATE_TYPE!r}, "
                                f"found {statement.get('predicateType')!r}")
    subject = (statement.get("subject") or [{}])[0]
    expected = _expected(statement.get("predicate") or {}, str(subject.get("name", "")))
    if subject.get("digest", {}).get("sha256") != expected.root_digest:
        raise VerificationError("OMS subject: the root digest does not match the signed "
                                "resources")
    actual = digest_path(model, algorithm=expected.algorithm, method=expected.method,
                         shard_size=expected.shard_size or DEFAULT_SHARD_SIZE,
                         allow_symlinks=expected.allow_symlinks,
                         ignore_paths=expected.ignore_paths)
    differences = actual.diff_summary(expected)
    if differences:
        raise VerificationError(f"model {model}: does not match its signature: {differences}")
    return actual
