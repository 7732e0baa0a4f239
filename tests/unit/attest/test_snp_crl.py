"""AMD's CRL in SEV-SNP verification: a report is ``verified`` only when the product's
CRL, signed by the pinned ARK and current at the appraisal time, lists neither its ASK
nor its VCEK; without a CRL it is ``unverified`` (counted by nothing), naming it.

No real AMD CRL is public as a test vector (none in virtee/sev, go-sev-guest, trustee or
snpguest), so the test PKI of tests/support/amd_pki.py stands in for AMD's: RSASSA-PSS
ARK and ASK, an ECDSA P-384 VCEK with AMD's extensions, its ARK pinned for the test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from slsa_dist.attest import _tsm as tsm
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._snp import split_collateral, verify_report
from slsa_dist.attest._verdict import Appraisal

from support.amd_pki import AmdPki, shared

AT = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
UTC = dt.timezone.utc
NONCE = b"\x09" * 32


@pytest.fixture
def pki(monkeypatch: pytest.MonkeyPatch) -> AmdPki:
    found = shared()
    found.pin(monkeypatch)
    return found


def pem_crl(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)


def test_without_a_crl_the_report_is_unverified_naming_it(pki: AmdPki) -> None:
    verdict = verify_report(pki.report(), pki.collateral, AT, None)
    assert verdict.status == "unverified"
    assert verdict.failure == ""
    assert verdict.reason == ("not verified: revocation of the ASK and the VCEK (no AMD CRL of "
                              "ARK-Milan, KDS /vcek/v1/Milan/crl, carried or supplied)")
    # what did hold is still said, up to the root, as of the time
    assert verdict.verified[0].startswith("VCEK -> ASK -> pinned AMD ARK-Milan (sha256:")
    assert "report signed by the VCEK" in verdict.verified
    assert verdict.root.startswith("AMD ARK-Milan")
    assert verdict.as_of == AT.isoformat()
    why = verify_report(pki.report(), pki.collateral, AT, None, crl_missing="GET x: HTTP 404")
    assert why.reason.endswith("supplied; the node could not fetch it: GET x: HTTP 404)")


def test_with_the_arks_crl_the_report_is_verified(pki: AmdPki) -> None:
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=pki.crl())
    assert verdict.status == "verified", verdict.reason
    assert ("neither the ASK nor the VCEK is revoked (AMD's CRL of ARK-Milan, signed by the "
            "pinned ARK, current at the appraisal time)") in verdict.verified
    assert not any("revocation" in n for n in verdict.not_verified)
    # the same CRL in PEM, or inside the collateral (PEM or DER, files concatenated)
    assert verify_report(pki.report(), pki.collateral, AT, None,
                         crl=pem_crl(pki.crl())).status == "verified"
    assert verify_report(pki.report(), pki.collateral + pki.crl(), AT, None).status \
        == "verified"
    der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in (pki.vcek, pki.ask))
    assert verify_report(pki.report(), der + pki.crl(), AT, None).status == "verified"


def test_the_verifiers_crl_wins_over_the_carried_one(pki: AmdPki) -> None:
    revoked = pem_crl(pki.crl(pki.ask))
    verdict = verify_report(pki.report(), pki.collateral + revoked, AT, None, crl=pki.crl())
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    fresh = verify_report(pki.report(), pki.collateral + pki.crl(), AT, None,
                          crl=pki.crl(pki.ask))
    assert fresh.status == "verified", fresh.reason


@pytest.mark.parametrize("which", ["ask", "vcek"])
def test_a_revoked_ask_or_vcek_fails_the_chain_naming_it(pki: AmdPki, which: str) -> None:
    cert = pki.ask if which == "ask" else pki.vcek
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=pki.crl(cert))
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    name = "ASK 'SEV-Milan' (serial 0x10001)" if which == "ask" \
        else "VCEK 'SEV-VCEK' (serial 0x5ec)"
    assert verdict.reason == f"{name} is revoked: listed in the AMD CRL of ARK-Milan"
    assert not verdict.root


@pytest.mark.parametrize(("start", "end"), [
    (dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 5, 31, tzinfo=UTC)),  # stale
    (dt.datetime(2025, 6, 2, tzinfo=UTC), dt.datetime(2026, 1, 1, tzinfo=UTC))])  # future
def test_a_crl_not_current_at_the_appraisal_time_fails(pki: AmdPki, start: dt.datetime,
                                                        end: dt.datetime) -> None:
    crl = pki.crl(this_update=start, next_update=end)
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=crl)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert verdict.reason == (f"AMD CRL of ARK-Milan: current from {start.isoformat()} to "
                              f"{end.isoformat()}, not at {AT.isoformat()} (a CRL current "
                              "then is needed)")
    # judged as of a time it covers, it holds
    assert verify_report(pki.report(), pki.collateral, start, None, crl=crl).status \
        == "verified"


def test_a_crl_signed_by_another_key_fails(pki: AmdPki) -> None:
    other = rsa.generate_private_key(65537, 2048)
    for key, why in ((other, "InvalidSignature"), (pki.ask_key, "InvalidSignature")):
        verdict = verify_report(pki.report(), pki.collateral, AT, None,
                                crl=pki.crl(key=key))
        assert (verdict.status, verdict.failure) == ("failed", "collateral")
        assert verdict.reason == (f"AMD CRL of ARK-Milan: signature not valid for the pinned "
                                  f"ARK-Milan ({why})")


def test_a_crl_of_another_issuer_or_signed_otherwise_fails(pki: AmdPki) -> None:
    ask_crl = pki.crl(issuer=pki.ask.subject, key=pki.ask_key)
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=ask_crl)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "the CRL given is issued by O=Test Micro Devices,CN=SEV-Milan" in verdict.reason
    # the ARK's own key, but PKCS #1 v1.5 rather than RSASSA-PSS as AMD signs
    v15 = (x509.CertificateRevocationListBuilder().issuer_name(pki.ark.subject)
           .last_update(dt.datetime(2024, 1, 1, tzinfo=UTC))
           .next_update(dt.datetime(2030, 1, 1, tzinfo=UTC))
           .sign(pki.ark_key, hashes.SHA384(), rsa_padding=padding.PKCS1v15())
           .public_bytes(serialization.Encoding.DER))
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=v15)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "expected RSASSA-PSS" in verdict.reason
    # bytes that are no CRL
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=b"\x30\x03\x02\x01\x00")
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert verdict.reason.startswith("AMD CRL of ARK-Milan: expected a DER X.509 CRL")


def test_a_crl_does_not_hide_a_binding_mismatch(pki: AmdPki) -> None:
    wanted = report_data(NONCE, "job-1", "node-a", size=64)
    for crl in (None, pki.crl()):
        verdict = verify_report(pki.report(), pki.collateral, AT, wanted, crl=crl)
        assert (verdict.status, verdict.failure) == ("failed", "binding mismatch")


def test_split_collateral_reads_pem_and_der_in_any_order(pki: AmdPki) -> None:
    der, crl = pki.vcek.public_bytes(serialization.Encoding.DER), pki.crl()
    mixed = b"subject=CN=SEV-Milan\n" + pki.pem(pki.ask) + der + b"\n" + pem_crl(crl)
    certs, crls = split_collateral(mixed)
    assert {c.serial_number for c in certs} == {pki.ask.serial_number, pki.vcek.serial_number}
    assert crls == [crl]
    with pytest.raises(Exception, match="expected DER certificates or CRLs"):
        split_collateral(der + b"\x30\x03\x02\x01\x00")


def evidence(pki: AmdPki, **extra: str) -> bytes:
    out = pki.report(report_data(NONCE, "job-1", "node-a", size=64))
    return json.dumps({"format": tsm.FORMAT, "provider": "sev_guest", "generation": "1",
                       "outblob": base64.b64encode(out).decode(),
                       "collateral": base64.b64encode(pki.collateral).decode(),
                       **extra}).encode()


def test_the_crl_carried_in_the_evidence_is_checked(pki: AmdPki) -> None:
    appraisal = Appraisal(at=AT)
    carried = evidence(pki, crl=base64.b64encode(pki.crl()).decode(), crlSource="test")
    verdict = tsm.verify(carried, NONCE, "job-1", "node-a", appraisal=appraisal)
    assert verdict.status == "verified", verdict.reason
    assert "report data is this job's binding (nonce, job, node)" in verdict.verified
    revoked = evidence(pki, crl=base64.b64encode(pki.crl(pki.vcek)).decode())
    verdict = tsm.verify(revoked, NONCE, "job-1", "node-a", appraisal=appraisal)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    missing = evidence(pki, crlMissing="GET http://kds/vcek/v1/Milan/crl: HTTP 503")
    verdict = tsm.verify(missing, NONCE, "job-1", "node-a", appraisal=appraisal)
    assert verdict.status == "unverified"
    assert verdict.reason.endswith("the node could not fetch it: GET http://kds/vcek/v1/Milan/"
                                   "crl: HTTP 503)")
    # the verifier's own CRL (its collateral) stands in for a missing one
    supplied = Appraisal(at=AT, collateral={"snp": pki.collateral + pki.crl()})
    assert tsm.verify(missing, NONCE, "job-1", "node-a", appraisal=supplied).status \
        == "verified"
    bad = evidence(pki, crl="not base64!")
    assert tsm.verify(bad, NONCE, "job-1", "node-a", appraisal=appraisal).failure \
        == "malformed"
