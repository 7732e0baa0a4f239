"""A delta or partitioned CRL never stands for the EK issuer's complete CRL.

``verify --ek-roots`` checks the EK certificate against the newest CRL of its issuer
among those given with the roots and those the node carries (``ekCrls``). A delta CRL
(RFC 5280 5.2.4: only the changes since a base CRL) and a CRL whose issuing
distribution point limits its scope (5.2.5: only CA certificates, only some reasons)
are signed by the same issuer, but list only part of what it has revoked. Either one,
newer than the complete CRL that lists the EK, was taken as "the CRL in force": the
revoked EK passed, and its quote counted. A node carrying such a CRL (an issuer that
publishes deltas hands it one every few hours) shadowed the verifier's own complete
CRL given with the roots.

Real swtpm TPMs with EK certificates from swtpm-localca; the CRLs are signed with that
CA's issuing key, as the EK tests do.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from slsa_dist.attest import _credential as credential
from slsa_dist.attest import _tpm as tpm
from slsa_dist.attest._verdict import Appraisal

from conftest import need
from support import swtpm

pytestmark = [pytest.mark.tpm, pytest.mark.timeout(180)]

NONCE = bytes(range(32))
JOB, NODE = "job-1", "node-0"


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[swtpm.EkCa, bytes,
                                                                          bytes, bytes]]:
    """(the CA, the evidence, the coordinator's challenge record, the EK certificate)."""
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    try:
        ca = swtpm.provision(tmp_path_factory.mktemp("tpm"))
    except Exception as exc:  # no swtpm_setup here: skipped, said why
        need(False, f"swtpm_setup: {exc}")
        raise
    with swtpm.swtpm(ca.state) as tcti:
        mp = pytest.MonkeyPatch()
        try:
            mp.setenv("TPM2TOOLS_TCTI", tcti)
            mp.setenv(tpm.EK_CHAIN_ENV, str(ca.chain))
            tpm.enroll()
            identity = tpm.identity()
            assert identity is not None
            ek, ak_public = identity
            record, blob = credential.challenge(ek, ak_public)
            yield ca, tpm.collect(NONCE, JOB, NODE, challenge=blob), record, ek
        finally:
            mp.undo()


def _crl(ca: swtpm.EkCa, *revoked: int, hours: float, number: int,
         extension: x509.ExtensionType | None = None) -> bytes:
    """A CRL (PEM) of the EK certificates' issuer, issued ``hours`` ago."""
    raw = (ca.root.parent / "signkey.pem").read_bytes()  # GnuTLS text, then the PEM
    key: Any = serialization.load_pem_private_key(raw[raw.index(b"-----BEGIN"):], None)
    issuer = x509.load_pem_x509_certificate(ca.chain.read_bytes())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(now - dt.timedelta(hours=hours))
               .next_update(now + dt.timedelta(days=30))
               .add_extension(x509.CRLNumber(number), critical=False))
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - dt.timedelta(days=2)).build())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


_NARROW = {
    "delta": x509.DeltaCRLIndicator(1),
    "CA certificates only": x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=False,
        only_contains_ca_certs=True, only_some_reasons=None, indirect_crl=False,
        only_contains_attribute_certs=False),
    "some reasons only": x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=False,
        only_contains_ca_certs=False,
        only_some_reasons=frozenset({x509.ReasonFlags.ca_compromise}), indirect_crl=False,
        only_contains_attribute_certs=False)}


@pytest.mark.parametrize("narrow", sorted(_NARROW))
def test_a_newer_partial_crl_does_not_hide_a_revoked_ek(
        answered: tuple[swtpm.EkCa, bytes, bytes, bytes], tmp_path: Path,
        narrow: str) -> None:
    ca, blob, record, ek = answered
    serial = x509.load_der_x509_certificate(ek).serial_number
    complete = _crl(ca, serial, hours=24, number=1)  # the issuer's full list: EK revoked
    roots = ca.root.read_bytes() + complete

    def appraise(evidence: bytes) -> Any:
        return tpm.verify(evidence, NONCE, JOB, NODE,
                          appraisal=Appraisal(challenge=record, ek_roots=(roots,)))

    control = appraise(blob)
    assert (control.status, control.failure) == ("failed", "certificate chain")
    assert f"(serial {serial:#x}) is revoked" in control.reason
    partial = _crl(ca, hours=1, number=2, extension=_NARROW[narrow]).decode()
    # carried by the node: the verifier's complete CRL must still decide
    evidence = json.loads(blob)
    evidence["ekCrls"] = partial
    verdict = appraise(json.dumps(evidence).encode())
    assert verdict.status != "verified", (narrow, verdict.verified)
    assert verdict.failure == "certificate chain"
    # given alongside the complete one with the roots: the same
    roots += partial.encode()
    verdict = appraise(blob)
    assert verdict.status != "verified", (narrow, verdict.verified)


def test_an_ek_a_delta_crl_lists_is_revoked(
        answered: tuple[swtpm.EkCa, bytes, bytes, bytes]) -> None:
    """The other way round: revoked since the complete CRL, listed only in a delta."""
    ca, blob, record, ek = answered
    serial = x509.load_der_x509_certificate(ek).serial_number
    roots = (ca.root.read_bytes() + _crl(ca, hours=24, number=1)
             + _crl(ca, serial, hours=1, number=2, extension=_NARROW["delta"]))
    verdict = tpm.verify(blob, NONCE, JOB, NODE,
                         appraisal=Appraisal(challenge=record, ek_roots=(roots,)))
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    assert f"(serial {serial:#x}) is revoked (a delta CRL" in verdict.reason
