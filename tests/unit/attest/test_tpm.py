"""TPM 2.0 quotes from a real software TPM (swtpm), verified in Python."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest

from slsa_dist.attest import _tpm as tpm

from conftest import need
from support import swtpm

pytestmark = [pytest.mark.tpm, pytest.mark.timeout(120)]

NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def tcti() -> Iterator[str]:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    with swtpm.tcti_env() as address:
        yield address


@pytest.fixture(scope="module")
def blob(tcti: str) -> bytes:
    return tpm.collect(NONCE, "job-1", "node-0")


def _edit(blob: bytes, **changes: object) -> bytes:
    evidence = json.loads(blob)
    evidence.update(changes)
    return json.dumps(evidence).encode()


def test_a_real_quote_verifies(blob: bytes) -> None:
    result = tpm.verify(blob, NONCE, "job-1", "node-0")
    assert result.status == "verified", result
    assert "nonce, job and node binding" in result.verified
    assert set(result.claims["pcrs"]) == {str(i) for i in range(8)}
    assert any("endorsement key" in n for n in result.not_verified)


def test_the_quote_structure_is_parsed(blob: bytes) -> None:
    from slsa_dist.attest._binding import report_data

    quote = tpm.parse_attest(base64.b64decode(json.loads(blob)["attest"]))
    assert quote.extra_data == report_data(NONCE, "job-1", "node-0")
    assert quote.selections == ((0x000B, tuple(range(8))),)


def test_a_wrong_nonce_is_rejected(blob: bytes) -> None:
    result = tpm.verify(blob, bytes(32), "job-1", "node-0")
    assert result.status == "failed"
    assert result.reason.startswith("nonce binding: expected qualifying data")


def test_a_quote_replayed_into_another_job_is_rejected(blob: bytes) -> None:
    assert tpm.verify(blob, NONCE, "job-2", "node-0").reason.startswith("nonce binding")


def test_a_quote_replayed_by_another_node_is_rejected(blob: bytes) -> None:
    assert tpm.verify(blob, NONCE, "job-1", "node-1").reason.startswith("nonce binding")


def test_every_tampered_byte_of_the_quote_is_rejected(blob: bytes) -> None:
    attest = bytearray(base64.b64decode(json.loads(blob)["attest"]))
    for index in range(len(attest)):
        attest[index] ^= 0x01
        tampered = _edit(blob, attest=base64.b64encode(bytes(attest)).decode())
        assert tpm.verify(tampered, NONCE, "job-1", "node-0").status == "failed", index
        attest[index] ^= 0x01


def test_a_tampered_pcr_value_is_rejected(blob: bytes) -> None:
    evidence = json.loads(blob)
    evidence["pcrs"]["sha256"]["0"] = "11" * 32
    result = tpm.verify(json.dumps(evidence).encode(), NONCE, "job-1", "node-0")
    assert result.reason.startswith("PCR digest")


def test_a_signature_from_another_ak_is_rejected(blob: bytes, tcti: str) -> None:
    other = json.loads(tpm.collect(NONCE, "job-1", "node-0"))
    mixed = _edit(blob, akPublicPem=other["akPublicPem"])
    assert tpm.verify(mixed, NONCE, "job-1", "node-0").reason.startswith("quote signature")


@pytest.mark.parametrize("bad", [b"", b"{", b'{"attest": "!!"}', b"[]",
                                 json.dumps({"attest": "AAAA", "signature": "AAAA",
                                             "akPublicPem": "x"}).encode()])
def test_malformed_or_truncated_evidence_is_rejected_with_a_reason(bad: bytes) -> None:
    result = tpm.verify(bad, NONCE, "job-1", "node-0")
    assert result.status == "failed"
    assert result.reason.startswith("malformed TPM evidence")


def test_truncated_attest_structure_names_the_offset(blob: bytes) -> None:
    attest = base64.b64decode(json.loads(blob)["attest"])
    result = tpm.verify(_edit(blob, attest=base64.b64encode(attest[:40]).decode()), NONCE,
                        "job-1", "node-0")
    assert "TPMS_ATTEST: expected" in result.reason


@pytest.fixture
def fresh_tpm(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A TPM of its own: enrollment changes the TPM for every later quote."""
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    with swtpm.swtpm() as address:
        monkeypatch.setenv("TPM2TOOLS_TCTI", address)
        yield address


def _ak(blob: bytes) -> tuple[str, bool]:
    claims = tpm.verify(blob, NONCE, "job-1", "node-0").claims
    return claims["akSha256"], claims["akEnrolled"]


def test_enrolling_keeps_one_ak_and_every_later_quote_is_signed_by_it(fresh_tpm: str) -> None:
    before, enrolled_before = _ak(tpm.collect(NONCE, "job-1", "node-0"))
    assert enrolled_before is False  # a throwaway AK: anyone can make one
    fingerprint, created = tpm.enroll()
    assert created is True
    assert tpm.enroll() == (fingerprint, False)  # enrolling again keeps the same AK
    assert fingerprint != before
    for _ in range(2):
        assert _ak(tpm.collect(NONCE, "job-1", "node-0")) == (fingerprint, True)


def test_the_ak_fingerprint_does_not_depend_on_pem_layout(blob: bytes) -> None:
    pem = json.loads(blob)["akPublicPem"]
    body = "".join(pem.strip().splitlines()[1:-1])
    relaid = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(
        body[i:i + 40] for i in range(0, len(body), 40)) + "\n-----END PUBLIC KEY-----\n"
    assert relaid != pem
    assert tpm.ak_fingerprint(relaid) == tpm.ak_fingerprint(pem)
    assert tpm.ak_fingerprint(pem) == _ak(blob)[0]


def test_a_trusted_ak_list_is_read_with_names_and_comments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = "sha256:" + "ab" * 32
    path = tmp_path / "aks.txt"
    path.write_text(f"# enrolled 2026-11-27\n\n{good} node-a  # rack 4\n")
    assert tpm.load_trusted_aks(path) == frozenset({(good, "node-a")})


@pytest.mark.parametrize(("text", "message"), [
    ("sha256:" + "ab" * 32 + " node-a\nsha1:abcd node-b\n",
     "line 2: expected 'sha256:<64 lowercase hex>', found 'sha1:abcd'"),
    ("sha256:" + "ab" * 32 + "\n",
     "line 1: expected 'sha256:<64 hex> NODE-ID' (the node the AK was enrolled on)"),
    ("sha256:" + "AB" * 32 + "\n", "line 1: expected 'sha256:<64 lowercase hex>'"),
    ("# nothing\n", "expected at least one 'sha256:...' line, found none"),
])
def test_a_malformed_trusted_ak_list_is_refused_naming_the_line(
        tmp_path, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    from slsa_dist.errors import InputError

    path = tmp_path / "aks.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        tpm.load_trusted_aks(path)
