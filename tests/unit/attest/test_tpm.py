"""TPM 2.0 quotes from a real software TPM (swtpm), verified in Python."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

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


EVENT_LOGS = Path(__file__).resolve().parents[2] / "assets" / "vectors" / "tpm-eventlog"


def _with_log(blob: bytes, log: bytes) -> bytes:
    return _edit(blob, eventLog=base64.b64encode(log).decode())


def test_a_log_that_replays_to_the_quote_is_verified(blob: bytes) -> None:
    """A fresh swtpm's PCRs 0-7 are all zero: a log with only its Spec ID header (no
    event extended) replays to exactly that."""
    header = (EVENT_LOGS / "event.bin").read_bytes()[:4 + 4 + 20 + 4 + 45]
    result = tpm.verify(_with_log(blob, header), NONCE, "job-1", "node-0")
    assert result.status == "verified", result.describe()
    assert "boot event log replays to the quoted SHA-256 PCRs 0, 1, 2, 3, 4, 5, 6, 7 " \
           "(0 events)" in result.verified
    assert result.claims["events"] == []
    assert result.claims["eventLog"]["replay"] == "matches"  # type: ignore[index]


def test_a_log_that_does_not_replay_names_the_pcr(blob: bytes) -> None:
    result = tpm.verify(_with_log(blob, (EVENT_LOGS / "event.bin").read_bytes()), NONCE,
                        "job-1", "node-0")
    assert (result.status, result.failure) == ("failed", "event log")
    assert result.reason == (
        "event log: PCR 0: the log (its 1 event(s), indices 1-1) replays to "
        "118bdc4043596f8d6b7813438131959961f6abba29bab0075d16ca39664f5862, the quote "
        "holds " + "00" * 32)


def test_a_legacy_sha1_log_is_refused_clearly(blob: bytes) -> None:
    result = tpm.verify(_with_log(blob, (EVENT_LOGS / "event-uefi-sha1-log.bin").read_bytes()),
                        NONCE, "job-1", "node-0")
    assert (result.status, result.failure) == ("failed", "event log")
    assert result.reason == ("event log: expected SHA-256 digests (the quoted bank), found "
                             "only sha1 (a legacy SHA-1 log, no Spec ID Event03 header)")


def test_a_malformed_log_fails(blob: bytes) -> None:
    result = tpm.verify(_with_log(blob, b"\x00" * 10), NONCE, "job-1", "node-0")
    assert result.failure == "event log"
    assert result.reason == ("event log: malformed (event log: expected 20 bytes of event 0 "
                             "SHA-1 digest at offset 8, found 2)")


def test_without_a_log_the_boot_events_are_said_unverified(blob: bytes) -> None:
    result = tpm.verify(_edit(blob, eventLogError="/sys/...: Permission denied"), NONCE,
                        "job-1", "node-0")
    assert result.status == "verified"
    assert "the boot events behind the PCR values (no event log in the evidence: " \
           "/sys/...: Permission denied)" in result.not_verified


def test_the_node_attaches_its_log_or_says_why_not(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    log = (EVENT_LOGS / "event-gce-ubuntu-2104-log.bin").read_bytes()
    path = tmp_path / "binary_bios_measurements"
    path.write_bytes(log)
    monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(path))
    evidence: dict[str, object] = {}
    tpm._attach_event_log(evidence)
    assert base64.b64decode(str(evidence["eventLog"])) == log
    monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(tmp_path / "absent"))
    evidence = {}
    tpm._attach_event_log(evidence)
    assert "eventLog" not in evidence
    assert "No such file or directory" in str(evidence["eventLogError"])
    path.write_bytes(b"\0" * (tpm.MAX_EVENT_LOG_BYTES + 1))
    monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(path))
    evidence = {}
    tpm._attach_event_log(evidence)
    assert evidence == {"eventLogError": f"{path}: expected at most "
                                         f"{tpm.MAX_EVENT_LOG_BYTES} bytes, found more"}
