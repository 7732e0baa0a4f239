"""Attestation test helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from slsa_dist.attest._verdict import EvidenceVerdict
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import (
    MEDIA_NODE,
    MEDIA_RANK,
    EvidenceRecord,
    NodeRecord,
    RankAttempt,
    RankRecord,
)
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, record_descriptor

__all__ = ["as_recorded", "with_evidence"]


def as_recorded(evidence: EvidenceRecord, job_id: str, node_id: str) -> EvidenceVerdict:
    """An appraiser that takes each record's verdict as written: for tests of the
    attestation policy's node and key rules alone (the re-appraisal of raw evidence is
    tested in tests/security/test_evidence_reappraisal.py)."""
    del job_id, node_id
    return EvidenceVerdict(status=evidence.status, reason=evidence.reason,  # type: ignore[arg-type]
                           claims=evidence.claims,
                           root="(as recorded)" if evidence.status == "verified" else "")


def with_evidence(nodes: Mapping[str, Sequence[EvidenceRecord]], *,
                  invocation_id: str = "job-1", ranks: Mapping[int, str] | None = None
                  ) -> Provenance:
    """A provenance whose node records carry ``nodes``' evidence (and, with ``ranks``,
    a completed rank on each named node): what ``require_attestation`` reads."""
    builder = ProvenanceBuilder(invocation_id=invocation_id)
    builder.add_subject(ResourceDescriptor(name="m",
                                           digest={"sha256": hashlib.sha256().hexdigest()}))
    for node, evidence in nodes.items():
        builder.add_byproduct(record_descriptor(
            name=f"node/{node}", media_type=MEDIA_NODE,
            record=NodeRecord(node=node, evidence=tuple(evidence)).to_dict()))
    for rank, node in (ranks or {}).items():
        builder.add_byproduct(record_descriptor(
            name=f"rank/{rank}", media_type=MEDIA_RANK,
            record=RankRecord(rank=rank, node=node, completed=True,
                              attempts=(RankAttempt(attempt=0, node=node),)).to_dict()))
    return Provenance.from_statement(builder.build())
