"""An AMD CRL that is not complete for the ASK and VCEK does not clear them.

The fifth review found that a newer delta or partitioned CRL hid a revoked EK (fixed
in ``_pki.check_crl``); the SNP check, written beside it, took any CRL the pinned ARK
signed as the whole list. A delta CRL (only the changes since a base CRL) or one
limited to some reasons lists nothing for a certificate revoked earlier or otherwise:
"not listed" there is not "not revoked".
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from slsa_dist.attest._snp import verify_report

from support.amd_pki import PSS, AmdPki, shared

AT = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)


def _crl(pki: AmdPki, extension: x509.ExtensionType) -> bytes:
    return (x509.CertificateRevocationListBuilder().issuer_name(pki.ark.subject)
            .last_update(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
            .next_update(dt.datetime(2044, 1, 1, tzinfo=dt.timezone.utc))
            .add_extension(extension, critical=True)
            .sign(pki.ark_key, hashes.SHA384(), rsa_padding=PSS)
            .public_bytes(serialization.Encoding.DER))


@pytest.mark.parametrize(("extension", "found"), [
    (x509.DeltaCRLIndicator(1), "a delta CRL"),
    (x509.IssuingDistributionPoint(None, None, False, False,
                                   frozenset({x509.ReasonFlags.key_compromise}), False, False),
     "some revocation reasons only"),
])
def test_a_partial_amd_crl_does_not_clear_the_chain(
        monkeypatch: pytest.MonkeyPatch, extension: x509.ExtensionType, found: str) -> None:
    pki = shared()
    pki.pin(monkeypatch)
    assert verify_report(pki.report(), pki.collateral, AT, None,
                         crl=pki.crl()).status == "verified"  # a complete one does
    verdict = verify_report(pki.report(), pki.collateral, AT, None, crl=_crl(pki, extension))
    assert (verdict.status, verdict.failure) == ("failed", "collateral"), verdict.describe()
    assert "expected a complete CRL for the ASK" in verdict.reason
    assert found in verdict.reason
