"""TPM 2.0 quotes from a real software TPM (swtpm), verified in Python."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest

from slsa_dist._internal import swtpm
from slsa_dist.attest import tpm

from conftest import need

pytestmark = [pytest.mark.tpm, pytest.mark.timeout(120)]

NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def tcti() -> Iterator[str]:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    with swtpm.swtpm() as address:
        old = os.environ.get("TPM2TOOLS_TCTI")
        os.environ["TPM2TOOLS_TCTI"] = address
        try:
            yield address
        finally:
            if old is None:
                os.environ.pop("TPM2TOOLS_TCTI", None)
            else:
                os.environ["TPM2TOOLS_TCTI"] = old


@pytest.fixture(scope="module")
def blob(tcti: str) -> bytes:
    return tpm.collect(NONCE, "job-1", "node-0")


def _edit(blob: bytes, **changes: object) -> bytes:
    evidence = json.loads(blob)
    evidence.update(changes)
    return json.dumps(evidence).encode()


def test_a_real_quote_verifies(blob: bytes) -> None:
    result = tpm.verify(blob, NONCE, "job-1", "node-0")
    assert result["status"] == "verified", result
    assert "nonce, job and node binding" in result["verified"]
    assert set(result["claims"]["pcrs"]) == {str(i) for i in range(8)}
    assert any("endorsement key" in n for n in result["not_verified"])


def test_the_quote_structure_is_parsed(blob: bytes) -> None:
    from slsa_dist.attest.binding import report_data

    quote = tpm.parse_attest(base64.b64decode(json.loads(blob)["attest"]))
    assert quote.extra_data == report_data(NONCE, "job-1", "node-0")
    assert quote.selections == ((0x000B, tuple(range(8))),)


def test_a_wrong_nonce_is_rejected(blob: bytes) -> None:
    result = tpm.verify(blob, bytes(32), "job-1", "node-0")
    assert result["status"] == "failed"
    assert result["reason"].startswith("nonce binding: expected qualifying data")


def test_a_quote_replayed_into_another_job_is_rejected(blob: bytes) -> None:
    assert tpm.verify(blob, NONCE, "job-2", "node-0")["reason"].startswith("nonce binding")


def test_a_quote_replayed_by_another_node_is_rejected(blob: bytes) -> None:
    assert tpm.verify(blob, NONCE, "job-1", "node-1")["reason"].startswith("nonce binding")


def test_every_tampered_byte_of_the_quote_is_rejected(blob: bytes) -> None:
    attest = bytearray(base64.b64decode(json.loads(blob)["attest"]))
    for index in range(len(attest)):
        attest[index] ^= 0x01
        tampered = _edit(blob, attest=base64.b64encode(bytes(attest)).decode())
        assert tpm.verify(tampered, NONCE, "job-1", "node-0")["status"] == "failed", index
        attest[index] ^= 0x01


def test_a_tampered_pcr_value_is_rejected(blob: bytes) -> None:
    evidence = json.loads(blob)
    evidence["pcrs"]["sha256"]["0"] = "11" * 32
    result = tpm.verify(json.dumps(evidence).encode(), NONCE, "job-1", "node-0")
    assert result["reason"].startswith("PCR digest")


def test_a_signature_from_another_ak_is_rejected(blob: bytes, tcti: str) -> None:
    other = json.loads(tpm.collect(NONCE, "job-1", "node-0"))
    mixed = _edit(blob, akPublicPem=other["akPublicPem"])
    assert tpm.verify(mixed, NONCE, "job-1", "node-0")["reason"].startswith("quote signature")


@pytest.mark.parametrize("bad", [b"", b"{", b'{"attest": "!!"}', b"[]",
                                 json.dumps({"attest": "AAAA", "signature": "AAAA",
                                             "akPublicPem": "x"}).encode()])
def test_malformed_or_truncated_evidence_is_rejected_with_a_reason(bad: bytes) -> None:
    result = tpm.verify(bad, NONCE, "job-1", "node-0")
    assert result["status"] == "failed"
    assert result["reason"].startswith("malformed TPM evidence")


def test_truncated_attest_structure_names_the_offset(blob: bytes) -> None:
    attest = base64.b64decode(json.loads(blob)["attest"])
    result = tpm.verify(_edit(blob, attest=base64.b64encode(attest[:40]).decode()), NONCE,
                        "job-1", "node-0")
    assert "TPMS_ATTEST: expected" in result["reason"]
