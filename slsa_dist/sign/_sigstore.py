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

from slsa_dist.errors import InputError
from slsa_dist.sign._dsse import Envelope, write_atomic

__all__ = [
    "MEDIA_TYPE",
    "SUFFIX",
    "SigstoreBundle",
    "from_sigstore_bundle",
    "is_sigstore_bundle",
    "to_sigstore_bundle",
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
    from sigstore_models.bundle.v1 import Bundle  # pydantic models: only when asked for

    return Bundle.model_validate(data).to_json()


def write_sigstore_bundle(path: str | os.PathLike[str], envelope: Envelope, *,
                          hint: str) -> Path:
    """Write the bundle atomically (``<name>.sigstore.json``)."""
    return write_atomic(path, to_sigstore_bundle(envelope, hint=hint) + "\n")


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
    from pydantic import ValidationError
    from sigstore_models.bundle.v1 import Bundle

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


class SigstoreBundle:
    """The Sigstore bundle v0.3 format (``<name>.sigstore.json``): the envelope with its
    signing key's id as the hint."""

    name = "sigstore"
    suffix = SUFFIX
    media_type = MEDIA_TYPE

    def write(self, path: str | os.PathLike[str], envelope: Envelope) -> Path:
        return write_sigstore_bundle(path, envelope, hint=envelope.signatures[0].keyid)

    def sniff(self, text: str) -> bool:
        # A Sigstore bundle names its media type in plain text (a DSSE line carries its
        # statement in base64): only then is the JSON parsed, and the models imported.
        return (text.lstrip().startswith("{") and "application/vnd.dev.sigstore.bundle" in text
                and is_sigstore_bundle(text))

    def read(self, text: str, source: str) -> list[Envelope]:
        try:
            return [from_sigstore_bundle(text)[0]]
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
