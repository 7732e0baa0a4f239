from __future__ import annotations

import base64
import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from slsa_dist.errors import InputError, VerificationError
from slsa_dist.sign._dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    pae,
    sign_envelope,
    verify_envelope,
    write_bundle,
)
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer


def test_pae_matches_the_dsse_spec_vector() -> None:
    # secure-systems-lab/dsse protocol.md test vector.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_sign_then_verify_returns_exact_payload(algorithm: str) -> None:
    signer = Signer.generate(algorithm)  # type: ignore[arg-type]
    envelope = sign_envelope(b'{"x":1}', payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    assert verify_envelope(Envelope.from_json(envelope.to_json()), [signer.public()]) == b'{"x":1}'


def test_verify_rejects_a_key_that_did_not_sign() -> None:
    envelope = sign_envelope(b"p", payload_type=IN_TOTO_PAYLOAD_TYPE,
                             signers=[Signer.generate()])
    with pytest.raises(VerificationError, match="expected 1 valid signature"):
        verify_envelope(envelope, [Signer.generate().public()])


def test_threshold_counts_each_trusted_key_once() -> None:
    a, b = Signer.generate(), Signer.generate("ed25519")
    both = sign_envelope(b"p", payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[a, b])
    verify_envelope(both, [a.public(), b.public()], threshold=2)
    twice = Envelope(payload=both.payload, payload_type=both.payload_type,
                     signatures=(both.signatures[0], both.signatures[0]))
    with pytest.raises(VerificationError, match="found 1"):
        verify_envelope(twice, [a.public(), b.public()], threshold=2)


def test_keyid_is_only_a_hint() -> None:
    signer = Signer.generate()
    envelope = sign_envelope(b"p", payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    data = envelope.to_dict()
    data["signatures"][0]["keyid"] = "not-the-key"  # type: ignore[index]
    assert verify_envelope(Envelope.from_dict(data), [signer.public()]) == b"p"


def test_url_safe_unpadded_base64_is_accepted() -> None:
    signer = Signer.generate("ed25519")
    envelope = sign_envelope(b"\xfb\xff" * 5, payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    data = envelope.to_dict()
    data["payload"] = base64.urlsafe_b64encode(envelope.payload).decode().rstrip("=")
    assert verify_envelope(Envelope.from_dict(data), [signer.public()]) == envelope.payload


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("payload"), "expected field 'payload'"),
    (lambda d: d.update(payload="%%%"), "expected base64"),
    (lambda d: d.update(signatures=[]), "expected a non-empty list"),
    (lambda d: d.update(payloadType=7), "expected a string"),
])
def test_malformed_envelopes_name_what_was_expected(mutate, message) -> None:  # type: ignore[no-untyped-def]
    data = sign_envelope(b"p", payload_type=IN_TOTO_PAYLOAD_TYPE,
                         signers=[Signer.generate()]).to_dict()
    mutate(data)
    with pytest.raises(InputError, match=message):
        Envelope.from_dict(data)


def test_bundle_round_trip_keeps_every_envelope(tmp_path) -> None:  # type: ignore[no-untyped-def]
    signer = Signer.generate()
    envelopes = [sign_envelope(p, payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
                 for p in (b"a", b"b")]
    path = write_bundle(tmp_path / "x.intoto.jsonl", envelopes)
    assert [e.payload for e in read_bundle(path)] == [b"a", b"b"]


# --- interop with securesystemslib, both directions -------------------------------------


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_securesystemslib_verifies_our_envelope(algorithm: str) -> None:
    signer = Signer.generate(algorithm)  # type: ignore[arg-type]
    ours = sign_envelope(b'{"hello":"dsse"}', payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    theirs = SslibEnvelope.from_dict(json.loads(ours.to_json()))
    key = SSlibKey.from_crypto(signer.public().crypto_key, keyid=signer.keyid)
    verified = theirs.verify([key], 1)
    assert signer.keyid in verified


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_we_verify_securesystemslib_envelope(algorithm: str) -> None:
    signer = Signer.generate(algorithm)  # type: ignore[arg-type]
    theirs = SslibEnvelope(payload=b'{"from":"sslib"}', payload_type=IN_TOTO_PAYLOAD_TYPE,
                           signatures={})
    sslib_signer = CryptoSigner(signer._key)
    theirs.sign(sslib_signer)
    ours = Envelope.from_dict(theirs.to_dict())
    assert verify_envelope(ours, [signer.public()]) == b'{"from":"sslib"}'


# --- every byte of a small bundle matters -------------------------------------------------


def test_changing_any_byte_of_payload_or_signature_is_rejected() -> None:
    signer = Signer.generate("ed25519")
    envelope = sign_envelope(b'{"_type":"x","n":1}', payload_type=IN_TOTO_PAYLOAD_TYPE,
                             signers=[signer])
    key = [signer.public()]
    fields = {"payload": envelope.payload, "sig": envelope.signatures[0].sig}
    tried = 0
    for field, original in fields.items():
        for index in range(len(original)):
            for flip in (0x01, 0x80):
                mutated = bytearray(original)
                mutated[index] ^= flip
                if field == "payload":
                    candidate = Envelope(payload=bytes(mutated), payload_type=envelope.payload_type,
                                         signatures=envelope.signatures)
                else:
                    candidate = Envelope(
                        payload=envelope.payload, payload_type=envelope.payload_type,
                        signatures=(type(envelope.signatures[0])(keyid=signer.keyid,
                                                                 sig=bytes(mutated)),))
                with pytest.raises(VerificationError):
                    verify_envelope(candidate, key)
                tried += 1
    assert tried == 2 * (len(fields["payload"]) + len(fields["sig"]))
