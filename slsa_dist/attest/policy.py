"""``slsa-dist verify --require-attestation KIND``: every node has valid evidence of KIND."""

from __future__ import annotations

from slsa_dist.provenance import MEDIA_NODE, Provenance
from slsa_dist.verify import Check

__all__ = ["require_attestation"]


def require_attestation(provenance: Provenance, kind: str) -> Check:
    """Pass when every node recorded verified evidence of ``kind`` (``any``: of some kind)."""
    name = f"attestation {kind}"
    nodes = provenance.records(MEDIA_NODE)
    if not nodes:
        return Check(name, False, "expected node records with evidence, found no nodes")
    lacking = []
    for node in nodes:
        evidence = [e for e in node.get("evidence") or []
                    if kind == "any" or e.get("kind") == kind]
        if any(e.get("status") == "verified" for e in evidence):
            continue
        why = "; ".join(f"{e.get('kind')}: {e.get('status')}: {e.get('reason', '')}"
                        for e in evidence) or f"no {kind} evidence recorded"
        lacking.append(f"{node.get('node')} ({why})")
    if lacking:
        return Check(name, False, f"expected verified {kind} evidence from every node, found "
                     f"none for: {', '.join(lacking)}")
    return Check(name, True, f"verified {kind} evidence from all {len(nodes)} node(s)")
