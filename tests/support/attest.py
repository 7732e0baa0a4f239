"""Attestation test helpers."""

from __future__ import annotations

from slsa_dist.attest._verdict import EvidenceVerdict
from slsa_dist.model._records import EvidenceRecord


def as_recorded(evidence: EvidenceRecord, job_id: str, node_id: str) -> EvidenceVerdict:
    """An appraiser that takes each record's verdict as written: for tests of the
    attestation policy's node and key rules alone (the re-appraisal of raw evidence is
    tested in tests/security/test_evidence_reappraisal.py)."""
    del job_id, node_id
    return EvidenceVerdict(status=evidence.status, reason=evidence.reason,  # type: ignore[arg-type]
                           claims=evidence.claims,
                           root="(as recorded)" if evidence.status == "verified" else "")
