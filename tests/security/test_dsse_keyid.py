"""Item 21: a bundle verifies out of the box with securesystemslib's own key objects.

Our keyid was the SHA-256 of the key's DER SPKI; securesystemslib matches
signatures by keyid, so ``SSlibKey.from_crypto(public_key)`` found 0 signatures
unless the key was imported under slsa-dist's id. The keyid is now
securesystemslib's default (docs/user-guide.md, "Verifying with other tools").
"""

from __future__ import annotations

import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from slsa_dist.sign._keys import Signer


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_securesystemslib_verifies_with_a_key_made_from_the_public_key_alone(
        algorithm: str) -> None:
    signer = Signer.generate(algorithm)  # type: ignore[arg-type]
    envelope = sign_envelope(b'{"a": 1}', payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    theirs = SslibEnvelope.from_dict(json.loads(envelope.to_json()))
    key = SSlibKey.from_crypto(signer.public().crypto_key)  # no keyid passed
    assert key.keyid == signer.keyid
    assert theirs.verify([key], 1)


def test_an_envelope_with_the_earlier_key_id_still_verifies() -> None:
    import dataclasses
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from slsa_dist.sign._dsse import verify_envelope

    signer = Signer.generate()
    envelope = sign_envelope(b"{}", payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    der = signer.public().crypto_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    old = dataclasses.replace(envelope, signatures=tuple(
        dataclasses.replace(s, keyid=hashlib.sha256(der).hexdigest())
        for s in envelope.signatures))
    assert verify_envelope(old, [signer.public()]) == b"{}"
