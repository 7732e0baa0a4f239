"""TDX quotes and SEV-SNP reports built byte by byte from the published layouts."""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from slsa_dist.attest import _tsm as tsm
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._registry import verify_evidence

NONCE = b"\x07" * 32


def tdx_quote(data: bytes) -> bytes:
    header = struct.pack("<HHI", 4, 2, 0x81) + b"\0" * 40  # version, key type, tee type
    body = bytearray(584)
    body[136:184] = b"\x11" * 48  # MRTD
    body[520:584] = data
    return header + bytes(body) + struct.pack("<I", 0)  # empty signature data


def snp_report(data: bytes, key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    report = bytearray(0x4A0)
    struct.pack_into("<IIQ", report, 0, 2, 1, 0x30000)
    struct.pack_into("<II", report, 0x30, 0, 1)  # vmpl, signature algorithm
    report[0x50:0x90] = data
    report[0x90:0xC0] = b"\x22" * 48  # measurement
    if key is not None:
        r, s = decode_dss_signature(key.sign(bytes(report[:0x2A0]), ec.ECDSA(hashes.SHA384())))
        report[0x2A0:0x2A0 + 72] = r.to_bytes(72, "little")
        report[0x2A0 + 72:0x2A0 + 144] = s.to_bytes(72, "little")
    return bytes(report)


def evidence(provider: str, out: bytes) -> bytes:
    return json.dumps({"format": tsm.FORMAT, "provider": provider, "generation": "1",
                       "outblob": base64.b64encode(out).decode()}).encode()


def vcek(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SEV-VCEK")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA384()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_tdx_quote_with_the_right_binding_checks_structure_and_binding_only() -> None:
    blob = evidence("tdx_guest", tdx_quote(report_data(NONCE, "j", "n", size=64)))
    result = tsm.verify(blob, NONCE, "j", "n")
    assert result.status == "structure-only"  # no signature chain (#14 item 16)
    assert result.claims["mrTd"] == "11" * 48
    assert any("PCK certificate chain" in n for n in result.not_verified)


def test_tdx_quote_for_another_job_is_rejected() -> None:
    blob = evidence("tdx_guest", tdx_quote(report_data(NONCE, "other", "n", size=64)))
    verdict = tsm.verify(blob, NONCE, "j", "n")
    assert verdict.reason.startswith("nonce binding")
    assert verdict.failure == "binding mismatch"


def test_truncated_tdx_quote_is_rejected_with_sizes() -> None:
    blob = evidence("tdx_guest", tdx_quote(report_data(NONCE, "j", "n", size=64))[:300])
    assert "expected at least 632 bytes, found 300" in tsm.verify(blob, NONCE, "j", "n").reason


def test_a_self_made_vcek_supplied_to_the_verifier_does_not_chain_to_amd() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    blob = evidence("sev_guest", snp_report(report_data(NONCE, "j", "n", size=64), key))
    result = tsm.verify(blob, NONCE, "j", "n", vcek_pem=vcek(key))
    assert (result.status, result.failure) == ("failed", "certificate chain")
    assert "pinned AMD ARK" in result.reason


def test_a_vcek_the_node_sent_along_is_checked_like_any_other() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    report = snp_report(report_data(NONCE, "j", "n", size=64), key)
    blob = json.dumps({**json.loads(evidence("sev_guest", report)),
                       "vcekPem": vcek(key).decode()}).encode()
    result = tsm.verify(blob, NONCE, "j", "n")
    assert (result.status, result.failure) == ("failed", "certificate chain")


def test_snp_without_collateral_says_the_signature_was_not_verified() -> None:
    blob = evidence("sev_guest", snp_report(report_data(NONCE, "j", "n", size=64)))
    result = tsm.verify(blob, NONCE, "j", "n")
    assert result.status == "structure-only"  # no signature chain (#14 item 16)
    assert result.not_verified[0].startswith("report signature and VCEK chain")


def test_evidence_claiming_the_wrong_tee_kind_fails() -> None:
    blob = evidence("sev_guest", snp_report(report_data(NONCE, "j", "n", size=64)))
    verdict = verify_evidence("tdx", blob, NONCE, "j", "n")
    assert verdict.status == "failed"
    assert verdict.reason == "kind: claimed 'tdx', found a 'snp' report"


def test_an_unknown_provider_is_rejected() -> None:
    result = tsm.verify(evidence("arm_cca", b"x"), NONCE, "j", "n")
    assert "expected tdx_guest or sev_guest, found 'arm_cca'" in result.reason


def test_collection_names_the_tee_from_the_provider_and_records_an_unknown_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from slsa_dist.attest import _registry
    from slsa_dist.attest._verdict import UNAVAILABLE

    def provider_says(provider: str) -> None:
        blob = evidence(provider, snp_report(report_data(NONCE, "j", "n", size=64)))
        monkeypatch.setattr(tsm, "collect", lambda nonce, job, node: blob)

    monkeypatch.setattr(tsm, "available", lambda: None)
    monkeypatch.setattr(_registry, "ATTESTERS", (tsm.TsmAttester(),))
    provider_says("sev_guest")
    ((kind, _, fmt),) = _registry.collect_all(NONCE, "j", "n")
    assert (kind, fmt) == ("snp", "evidence")
    # A provider whose bytes merely mention "tdx" must not pass for either kind.
    provider_says('arm_cca "provider": "tdx')
    ((kind, why, fmt),) = _registry.collect_all(NONCE, "j", "n")
    assert (kind, fmt) == ("tsm", UNAVAILABLE)
    assert why.decode().startswith("collection failed: provider: expected tdx_guest or "
                                   "sev_guest, found 'arm_cca")


def test_junk_carried_beside_a_hosts_vlek_fails_instead_of_raising() -> None:
    import uuid

    vlek = b"\x30\x03\x02\x01\x00"  # not a certificate either
    table = (uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1").bytes_le
             + struct.pack("<II", 48, len(vlek)) + bytes(24) + vlek)
    report = bytearray(snp_report(report_data(NONCE, "j", "n", size=64)))
    report[0x48] |= 1 << 2  # signed by the VLEK
    blob = json.dumps({**json.loads(evidence("sev_guest", bytes(report))),
                       "auxblob": base64.b64encode(table).decode(),
                       "collateral": base64.b64encode(b"junk").decode()}).encode()
    verdict = tsm.verify(blob, NONCE, "j", "n")
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert verdict.reason.startswith("SNP collateral: the VLEK's chain: certificate:")
