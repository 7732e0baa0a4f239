"""SEV-SNP evidence without AMD's CRL must not count for ``--require-attestation snp``.

It did: a report whose chain reached the pinned ARK was ``verified`` although nothing
showed its ASK and VCEK were not revoked (the verdict listed "ASK revocation (no AMD CRL
carried)" among what was not verified, and counted anyway). Now it is ``unverified``,
naming the missing CRL; with the ARK's CRL carried it counts. The PKI is the test one
(tests/support/amd_pki.py), its ARK pinned for the test: no real AMD CRL is public.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from slsa_dist.attest import _tsm as tsm
from slsa_dist.attest._binding import report_data
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_NODE, EvidenceRecord, NodeRecord
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, record_descriptor
from slsa_dist.verify._attestation import require_attestation

from support.amd_pki import shared

NONCE = b"\x0b" * 32


def provenance(**carried: str) -> Provenance:
    pki = shared()
    out = pki.report(report_data(NONCE, "job-1", "node-0", size=64))
    blob = json.dumps({"format": tsm.FORMAT, "provider": "sev_guest", "generation": "1",
                       "outblob": base64.b64encode(out).decode(),
                       "collateral": base64.b64encode(pki.collateral).decode(),
                       **carried}).encode()
    evidence = EvidenceRecord(kind="snp", status="verified",  # as the coordinator wrote it
                              blob=base64.b64encode(blob).decode(), nonce=NONCE.hex(),
                              size=len(blob))
    builder = ProvenanceBuilder(invocation_id="job-1")
    builder.add_subject(ResourceDescriptor(name="m",
                                           digest={"sha256": hashlib.sha256().hexdigest()}))
    builder.add_byproduct(record_descriptor(name="node/node-0", media_type=MEDIA_NODE, record=(
        NodeRecord(node="node-0", evidence=(evidence,)).to_dict())))
    return Provenance.from_statement(builder.build())


def test_snp_evidence_without_a_crl_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    shared().pin(monkeypatch)
    check = require_attestation(provenance(crlMissing="GET kds: HTTP 404"), "snp")
    assert not check.ok, check.detail
    assert "no AMD CRL of ARK-Milan" in check.detail, check.detail
    assert not require_attestation(provenance(), "any").ok


def test_snp_evidence_with_the_arks_crl_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    shared().pin(monkeypatch)
    crl = base64.b64encode(shared().crl()).decode()
    check = require_attestation(provenance(crl=crl), "snp")
    assert check.ok, check.detail
    revoked = base64.b64encode(shared().crl(shared().ask)).decode()
    assert not require_attestation(provenance(crl=revoked), "snp").ok
