"""DSSE envelopes (Dead Simple Signing Envelope v1) and JSON Lines bundles.

The signature covers ``PAE(payloadType, payload)``; verification checks the
exact received payload bytes first and only then lets anyone parse them.

>>> from slsa_dist.sign._keys import Signer
>>> signer = Signer.generate("ed25519")
>>> env = sign_envelope(b'{"a":1}', payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
>>> verify_envelope(env, [signer.public()]) == b'{"a":1}'
True
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from slsa_dist._internal import canonical
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.model._statement import Statement
from slsa_dist.sign._keys import Signer, Verifier

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "Envelope",
    "JsonLines",
    "Signature",
    "pae",
    "sign_envelope",
    "sign_statement",
    "verify_envelope",
    "write_bundle",
]

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding, DSSE v1."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"{what}: expected a base64 string, found {type(text).__name__}")
    # DSSE verifiers MUST accept both standard and URL-safe base64, padded or not.
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what}: expected base64, found {text[:40]!r}") from None


@dataclass(frozen=True, kw_only=True)
class Signature:
    """One signature; ``keyid`` is an unauthenticated hint."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """A DSSE envelope holding the payload's exact bytes."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> str:
        return canonical.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Envelope:
        """Parse an envelope; unknown fields are ignored. Raises :class:`InputError`."""
        if not isinstance(data, dict):
            raise InputError(f"envelope: expected a JSON object, found {type(data).__name__}")
        for field in ("payload", "payloadType", "signatures"):
            if field not in data:
                raise InputError(f"envelope: expected field {field!r}, found none")
        payload_type = data["payloadType"]
        if not isinstance(payload_type, str):
            raise InputError(
                f"envelope.payloadType: expected a string, found {type(payload_type).__name__}"
            )
        raw_sigs = data["signatures"]
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise InputError("envelope.signatures: expected a non-empty list, found "
                             f"{raw_sigs!r:.40}")
        signatures = []
        for index, raw in enumerate(raw_sigs):
            if not isinstance(raw, dict) or "sig" not in raw:
                raise InputError(f"envelope.signatures[{index}]: expected an object with 'sig'")
            keyid = raw.get("keyid", "")
            if not isinstance(keyid, str):
                raise InputError(f"envelope.signatures[{index}].keyid: expected a string")
            signatures.append(
                Signature(keyid=keyid, sig=_b64decode(raw["sig"], f"signatures[{index}].sig"))
            )
        return cls(
            payload=_b64decode(data["payload"], "envelope.payload"),
            payload_type=payload_type,
            signatures=tuple(signatures),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"envelope: expected JSON, found malformed text ({exc})") from None
        return cls.from_dict(data)


def sign_envelope(payload: bytes, *, payload_type: str, signers: Sequence[Signer]) -> Envelope:
    """Sign ``payload`` with every signer (DSSE allows several signatures)."""
    if not signers:
        raise InputError("sign_envelope: expected at least one signer, found none")
    message = pae(payload_type, payload)
    return Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=tuple(Signature(keyid=s.keyid, sig=s.sign(message)) for s in signers),
    )


def verify_envelope(
    envelope: Envelope,
    verifiers: Iterable[Verifier],
    *,
    threshold: int = 1,
    payload_type: str | None = IN_TOTO_PAYLOAD_TYPE,
) -> bytes:
    """Check ``envelope`` against trusted keys and return the payload bytes.

    A trusted key counts once however many signatures it made; keyids only
    order the search. The payload is returned only after the signatures pass.

    Raises:
        VerificationError: wrong payload type, or fewer than ``threshold``
            distinct trusted keys signed it.
    """
    if payload_type is not None and envelope.payload_type != payload_type:
        raise VerificationError(
            f"payloadType: expected {payload_type!r}, found {envelope.payload_type!r}"
        )
    keys = list(verifiers)
    if threshold < 1:
        raise InputError(f"threshold: expected at least 1, found {threshold}")
    message = pae(envelope.payload_type, envelope.payload)
    accepted: set[str] = set()
    for signature in envelope.signatures:
        ordered = sorted(keys, key=lambda k: k.keyid != signature.keyid)
        for key in ordered:
            if key.keyid not in accepted and key.verify(signature.sig, message):
                accepted.add(key.keyid)
                break
    if len(accepted) < threshold:
        raise VerificationError(
            f"signature: expected {threshold} valid signature(s) from trusted keys "
            f"{sorted(k.keyid[:16] for k in keys)}, found {len(accepted)} "
            f"among {len(envelope.signatures)} signature(s)"
        )
    return envelope.payload


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, fsync, rename)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(target)
    return target


def write_bundle(path: str | os.PathLike[str], envelopes: Iterable[Envelope]) -> Path:
    """Write envelopes as JSON Lines (``<name>.intoto.jsonl``), atomically."""
    return write_atomic(path, "".join(envelope.to_json() + "\n" for envelope in envelopes))


def sign_statement(statement: Statement, signers: Sequence[Signer]) -> Envelope:
    """Sign the Statement's canonical bytes as a DSSE envelope."""
    return sign_envelope(statement.to_bytes(), payload_type=IN_TOTO_PAYLOAD_TYPE,
                         signers=signers)


class JsonLines:
    """The ``.intoto.jsonl`` bundle format: one DSSE envelope per line (in-toto's)."""

    name = "intoto"
    suffix = ".intoto.jsonl"
    media_type = "application/vnd.dsse.envelope.v1+json"

    def write(self, path: str | os.PathLike[str], envelope: Envelope) -> Path:
        return write_bundle(path, [envelope])

    def sniff(self, text: str) -> bool:
        """Any text: the format every other one falls back to (errors name the line)."""
        del text
        return True

    def read(self, text: str, source: str) -> list[Envelope]:
        envelopes = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                envelopes.append(Envelope.from_json(line))
            except InputError as exc:
                raise InputError(f"{source}:{number}: {exc}") from None
        if not envelopes:
            raise InputError(f"bundle {source}: expected at least one envelope, found none")
        return envelopes
