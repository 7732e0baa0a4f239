"""Sigstore bundles v0.3: written and read through sigstore-models, the same envelope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slsa_dist.errors import InputError
from slsa_dist.sign._dsse import sign_envelope, verify_envelope
from slsa_dist.sign._formats import read_bundle, write_signed
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._sigstore import MEDIA_TYPE, from_sigstore_bundle, to_sigstore_bundle

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'
TYPE = "application/vnd.in-toto+json"


def test_a_bundle_carries_the_same_envelope_and_the_key_hint(tmp_path: Path) -> None:
    signer = Signer.generate()
    envelope = sign_envelope(PAYLOAD, payload_type=TYPE, signers=[signer])
    data = json.loads(to_sigstore_bundle(envelope, hint=signer.keyid))
    assert data["mediaType"] == MEDIA_TYPE
    assert data["verificationMaterial"]["publicKey"] == {"hint": signer.keyid}
    assert data["dsseEnvelope"]["payloadType"] == TYPE
    again, hint = from_sigstore_bundle(json.dumps(data))
    assert (again, hint) == (envelope, signer.keyid)
    # read_bundle takes either format; the suffix picks the format when writing
    path = write_signed(tmp_path / "job.sigstore.json", envelope)
    assert read_bundle(path) == [envelope]
    assert read_bundle(write_signed(tmp_path / "job.intoto.jsonl", envelope)) == [envelope]
    verify_envelope(read_bundle(path)[0], [signer.public()])


def test_a_message_signature_bundle_or_garbage_is_one_clear_error(tmp_path: Path) -> None:
    message = {"mediaType": MEDIA_TYPE,
               "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
               "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                      "digest": "AAAA"},
                                    "signature": "AAAA"}}
    with pytest.raises(InputError, match="expected a DSSE envelope"):
        from_sigstore_bundle(json.dumps(message))
    broken = tmp_path / "broken.sigstore.json"
    broken.write_text(json.dumps({"mediaType": MEDIA_TYPE, "dsseEnvelope": 3}))
    with pytest.raises(InputError, match="expected a valid bundle") as info:
        read_bundle(broken)
    assert "\n" not in str(info.value)
