"""Signing keys: generate, load from PEM files, sign and verify raw bytes.

Two algorithms, both from ``cryptography``:

* ECDSA P-256 with SHA-256 (the default; what SLSA and in-toto recommend),
  signatures DER-encoded as ``securesystemslib`` and Sigstore write them;
* Ed25519 (deterministic signatures, used for reproducible test vectors).

A key id is the lowercase hex SHA-256 of the public key's DER
SubjectPublicKeyInfo. It is only a hint for picking a key, never trusted.

>>> signer = Signer.generate("ed25519")
>>> verifier = signer.public()
>>> verifier.verify(signer.sign(b"data"), b"data")
True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from slsa_dist.errors import InputError, SigningError

__all__ = ["Algorithm", "Signer", "Verifier", "keygen"]

Algorithm = Literal["ecdsa-p256", "ecdsa-p384", "ed25519"]

# ECDSA curves and the hash each signs with (as securesystemslib and model_signing pair
# them: P-256 with SHA-256, P-384 with SHA-384).
_CURVES: dict[str, tuple[Algorithm, type[hashes.HashAlgorithm], str]] = {
    "secp256r1": ("ecdsa-p256", hashes.SHA256, "ecdsa-sha2-nistp256"),
    "secp384r1": ("ecdsa-p384", hashes.SHA384, "ecdsa-sha2-nistp384"),
}

_PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _parse_pem(load: Callable[[bytes], object], data: bytes, source: str, kind: str) -> object:
    """``load(data)``, with every parse failure as a one-line InputError."""
    try:
        return load(data)
    except TypeError:
        raise InputError(
            f"{source}: expected an unencrypted {kind}, found an encrypted one"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(
            f"{source}: expected a PEM {kind} (ECDSA P-256, P-384 or Ed25519), "
            f"found data that does not parse as one ({exc})"
        ) from None


def _algorithm_of(key: _PublicKey) -> Algorithm:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if key.curve.name not in _CURVES:
        raise InputError(f"expected an ECDSA key on P-256 or P-384, found curve "
                         f"{key.curve.name}")
    return _CURVES[key.curve.name][0]


def _ecdsa(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> ec.ECDSA:
    return ec.ECDSA(_CURVES[key.curve.name][1]())


def _key_id(key: _PublicKey) -> str:
    """securesystemslib's default key id, so ``SSlibKey.from_crypto(public_key)`` finds
    our signatures as they are: SHA-256 over the OLPC canonical JSON of the key's
    ``keytype``, ``scheme`` and ``keyval.public`` (PEM for ECDSA, hex for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        keytype = scheme = "ed25519"
        public = key.public_bytes(serialization.Encoding.Raw,
                                  serialization.PublicFormat.Raw).hex()
    else:
        keytype, scheme = "ecdsa", _CURVES[key.curve.name][2]
        public = key.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def string(value: str) -> str:  # OLPC canonical JSON escapes only '\\' and '"'
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    canonical = (f'{{"keytype":{string(keytype)},"keyval":{{"public":{string(public)}}},'
                 f'"scheme":{string(scheme)}}}')
    return hashlib.sha256(canonical.encode()).hexdigest()


class Verifier:
    """A public key that checks signatures over raw bytes."""

    def __init__(self, *, key: _PublicKey) -> None:
        self._key = key
        self.algorithm: Algorithm = _algorithm_of(key)
        self.keyid = _key_id(key)

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "public key") -> Verifier:
        """Load a PEM SubjectPublicKeyInfo. Raises :class:`InputError`."""
        key = _parse_pem(serialization.load_pem_public_key, data, source, "public key")
        if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            raise InputError(
                f"{source}: expected an ECDSA P-256, P-384 or Ed25519 public key, "
                f"found {type(key).__name__}"
            )
        return cls(key=key)

    def public_pem(self) -> bytes:
        """The key as PEM SubjectPublicKeyInfo."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def crypto_key(self) -> _PublicKey:
        """The underlying ``cryptography`` key, for interop."""
        return self._key

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is valid over ``data``; never raises on a bad one."""
        try:
            if isinstance(self._key, ed25519.Ed25519PublicKey):
                self._key.verify(signature, data)
            else:
                self._key.verify(signature, data, _ecdsa(self._key))
        except InvalidSignature:
            return False
        return True


class Signer:
    """A private key that signs raw bytes. Only the coordinator holds one."""

    def __init__(self, *, key: _PrivateKey) -> None:
        self._key = key
        self._public = Verifier(key=key.public_key())

    @classmethod
    def generate(cls, algorithm: Algorithm = "ecdsa-p256") -> Signer:
        """A fresh key of ``algorithm``."""
        if algorithm == "ed25519":
            return cls(key=ed25519.Ed25519PrivateKey.generate())
        curve = ec.SECP384R1() if algorithm == "ecdsa-p384" else ec.SECP256R1()
        return cls(key=ec.generate_private_key(curve))

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "private key") -> Signer:
        """Load an unencrypted PKCS#8 (or SEC1) PEM private key."""
        key = _parse_pem(lambda pem: serialization.load_pem_private_key(pem, password=None),
                         data, source, "private key")
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise InputError(
                f"{source}: expected an ECDSA P-256, P-384 or Ed25519 private key, "
                f"found {type(key).__name__}"
            )
        return cls(key=key)

    @property
    def keyid(self) -> str:
        return self._public.keyid

    @property
    def algorithm(self) -> Algorithm:
        return self._public.algorithm

    def public(self) -> Verifier:
        """The matching public key."""
        return self._public

    def derive_secret(self, label: str) -> bytes:
        """A 32-byte secret for ``label`` that only a holder of this private key can
        compute (HKDF-SHA256 over the key): the journal's MAC key, for one."""
        der = self._key.private_bytes(serialization.Encoding.DER,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=label.encode()).derive(der)

    def private_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM. Write it 0600."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``. Raises :class:`SigningError`."""
        try:
            if isinstance(self._key, ed25519.Ed25519PrivateKey):
                return self._key.sign(data)
            return self._key.sign(data, _ecdsa(self._key))
        except Exception as exc:  # a failing HSM-like backend must not crash callers
            raise SigningError(f"signing with key {self.keyid[:16]} failed: {exc}") from exc


def keygen(out_dir: str | os.PathLike[str], *, algorithm: Algorithm = "ecdsa-p256",
           name: str = "signing") -> tuple[Path, Path]:
    """Write ``<name>.key`` (mode 0600) and ``<name>.pub`` into ``out_dir``.

    The private key file is created with 0600 from the start (no window in
    which it is readable by others) and is never overwritten.

    Returns:
        The private and public key paths.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    signer = Signer.generate(algorithm)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(
            f"expected no key at {private_path}, found one; refusing to overwrite it"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(signer.private_pem())
    public_path.write_bytes(signer.public().public_pem())
    return private_path, public_path
