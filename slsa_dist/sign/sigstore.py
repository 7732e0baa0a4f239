"""Sigstore bundles (v0.3): the same DSSE envelope, in the format Sigstore tools read.

A key-based bundle: ``mediaType`` ``application/vnd.dev.sigstore.bundle.v0.3+json``,
``verificationMaterial.publicKey.hint`` naming the signing key (its key id, as in
the envelope's signature), and ``dsseEnvelope``. No transparency log entry and no
timestamp: a verifier trusts the key by its hint, as with ``.intoto.jsonl``.
Serialization and parsing go through ``sigstore-models`` (the Sigstore project's
models of its protobuf specs), so what is written is what Sigstore's own readers
accept, and a bundle they wrote reads here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError
from sigstore_models.bundle.v1 import Bundle

from slsa_dist.errors import InputError
from slsa_dist.sign.dsse import Envelope, write_atomic

__all__ = [
    "MEDIA_TYPE",
    "SUFFIX",
    "from_sigstore_bundle",
    "is_sigstore_bundle",
    "to_sigstore_bundle",
    "write_signed",
    "write_sigstore_bundle",
]

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SUFFIX = ".sigstore.json"
_MEDIA_PREFIXES = ("application/vnd.dev.sigstore.bundle+json",
                   "application/vnd.dev.sigstore.bundle.v0.3+json")


def to_sigstore_bundle(envelope: Envelope, *, hint: str) -> str:
    """The bundle's JSON text for ``envelope`` signed by the key named ``hint``."""
    if not hint:
        raise InputError("sigstore bundle: expected a key hint (the signing key's id), "
                         "found none")
    data = {"mediaType": MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
            "dsseEnvelope": envelope.to_dict()}
    bundle = Bundle.model_validate(data)
    return bundle.to_json()


def write_sigstore_bundle(path: str | os.PathLike[str], envelope: Envelope, *,
                          hint: str) -> Path:
    """Write the bundle atomically (``<name>.sigstore.json``)."""
    return write_atomic(path, to_sigstore_bundle(envelope, hint=hint) + "\n")


def write_signed(path: str | os.PathLike[str], envelope: Envelope, *,
                 fmt: str = "auto") -> Path:
    """Write one signed envelope as ``fmt``: ``intoto`` (JSON Lines), ``sigstore`` (a
    bundle whose key hint is the envelope's signing key id), or ``auto`` (``sigstore``
    when the name ends in ``.sigstore.json``)."""
    from slsa_dist.sign.dsse import write_bundle  # dsse imports this module lazily

    if fmt == "auto":
        fmt = "sigstore" if str(path).endswith(SUFFIX) else "intoto"
    if fmt == "intoto":
        return write_bundle(path, [envelope])
    if fmt != "sigstore":
        raise InputError(f"bundle format: expected intoto, sigstore or auto, found {fmt!r}")
    return write_sigstore_bundle(path, envelope, hint=envelope.signatures[0].keyid)


def is_sigstore_bundle(text: str) -> bool:
    """Whether ``text`` is one JSON object naming a Sigstore bundle media type."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    media = data.get("mediaType") if isinstance(data, dict) else None
    return isinstance(media, str) and media.startswith(_MEDIA_PREFIXES)


def from_sigstore_bundle(text: str) -> tuple[Envelope, str]:
    """The DSSE envelope of a Sigstore bundle and its key hint ('' when the bundle names
    a certificate instead).

    Raises:
        InputError: not a Sigstore bundle, or one without a DSSE envelope.
    """
    try:
        bundle = Bundle.from_json(text)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise InputError(f"sigstore bundle: expected a valid bundle, found: {first}") from None
    if bundle.dsse_envelope is None:
        raise InputError("sigstore bundle: expected a DSSE envelope (an attestation), found "
                         "a message signature")
    material = bundle.verification_material
    hint = material.public_key.hint if material.public_key is not None else ""
    envelope = Envelope.from_dict(json.loads(bundle.dsse_envelope.to_json()))
    return envelope, hint or ""
