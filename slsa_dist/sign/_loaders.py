"""Loading keys by where they live: a PEM file, or a ``pkcs11:`` URI naming a key in an
HSM (:mod:`._pkcs11`; PyKCS11 is imported only then)."""

from __future__ import annotations

import os
from pathlib import Path

from slsa_dist.errors import InputError
from slsa_dist.sign._keys import Signer, Verifier
from slsa_dist.sign._pkcs11 import Pkcs11Signer

__all__ = ["load_signer", "load_verifier"]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what}: expected a PEM file at {path}, found no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what}: expected a PEM file at {path}, found a directory") from None
    except OSError as exc:
        raise InputError(f"{what}: cannot read {path}: {exc.strerror}") from None


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """Load a private key from a PEM file, or name one in an HSM (``pkcs11:`` URI,
    :mod:`slsa_dist.sign._pkcs11`)."""
    if str(path).startswith("pkcs11:"):
        return Pkcs11Signer(str(path))
    p = Path(path)
    return Signer.from_pem(_read(p, "private key"), source=str(p))


def load_verifier(path: str | os.PathLike[str]) -> Verifier:
    """Load a public key from a PEM file.

    A private key file is accepted too and reduced to its public half, so an
    operator can verify with the key the coordinator signed with.
    """
    p = Path(path)
    data = _read(p, "public key")
    if b"PRIVATE KEY" in data:
        return Signer.from_pem(data, source=str(p)).public()
    return Verifier.from_pem(data, source=str(p))
