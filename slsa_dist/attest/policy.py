"""``slsa-dist verify --require-attestation KIND``: every node has valid evidence of KIND.

"Every node" is every node a rank ran on (from the rank records, so a rank on
a node that never reported is caught), plus every node record when no rank
names one. A node record that hosted no rank (the Ray Train controller) is
not asked for evidence.
"""

from __future__ import annotations

from slsa_dist.attest.verdict import KINDS
from slsa_dist.errors import InputError
from slsa_dist.provenance import Provenance
from slsa_dist.records import EvidenceRecord
from slsa_dist.verify.bundle import Check

__all__ = ["REQUIREMENTS", "require_attestation"]

# What --require-attestation accepts: one evidence kind, or any kind at all.
REQUIREMENTS = (*KINDS, "any")


def _counts(evidence: EvidenceRecord, node_id: str,
            trusted_aks: frozenset[tuple[str, str]] | None) -> str | None:
    """None when this evidence counts for ``node_id``, else why not."""
    if evidence.status != "verified":
        return f"{evidence.status}: {evidence.reason}"
    if trusted_aks is not None and evidence.kind == "tpm":
        ak = str(evidence.claims.get("akSha256", ""))
        if (ak, node_id) in trusted_aks:
            return None
        vouches = sorted(node for fingerprint, node in trusted_aks if fingerprint == ak)
        if vouches:
            return (f"verified, but signed by AK {ak}, trusted for node(s) "
                    f"{', '.join(vouches)}, not for {node_id}")
        return f"verified, but signed by AK {ak or '(none recorded)'}, not a trusted AK"
    return None


def require_attestation(provenance: Provenance, kind: str, *,
                        trusted_aks: frozenset[tuple[str, str]] | None = None) -> Check:
    """Pass when every node recorded verified evidence of ``kind`` (``any``: of some kind).

    With ``trusted_aks`` ((fingerprint, node id) pairs from ``slsa-dist tpm enroll``),
    TPM evidence counts only when its quote was signed by the AK enrolled for that node.

    Raises:
        InputError: ``trusted_aks`` given for a kind other than ``tpm``.
    """
    if trusted_aks is not None and kind != "tpm":
        raise InputError(f"trusted AKs: expected them with a tpm requirement, found "
                         f"{kind!r}")
    name = f"attestation {kind}" + (" (trusted AKs)" if trusted_aks is not None else "")
    records = {n.node: n for n in provenance.node_records()}
    ran_ranks = sorted({node for r in provenance.rank_records() for node in r.nodes()})
    nodes = ran_ranks or sorted(records)
    if not nodes:
        return Check(name, False, "expected node records with evidence, found no nodes")
    lacking = []
    for node_id in nodes:
        node = records.get(node_id)
        if node is None:
            lacking.append(f"{node_id} (ran ranks, but no node agent reported for it)")
            continue
        reasons = [(e, _counts(e, node_id, trusted_aks)) for e in node.evidence
                   if kind in ("any", e.kind)]
        if any(why is None for _, why in reasons):
            continue
        why = "; ".join(f"{e.kind}: {reason}" for e, reason in reasons) \
            or f"no {kind} evidence recorded"
        lacking.append(f"{node_id} ({why})")
    if lacking:
        return Check(name, False, f"expected verified {kind} evidence from every node, found "
                     f"none for: {', '.join(lacking)}")
    return Check(name, True, f"verified {kind} evidence from all {len(nodes)} node(s)")
