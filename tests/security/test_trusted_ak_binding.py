"""Item 9: a trusted AK is bound to its node.

The name column of ``--trusted-aks`` (and policy ``trustedAks``) was ignored:
a quote by node A's enrolled AK counted for node M.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from slsa_dist.attest._tpm import load_trusted_aks
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_NODE, EvidenceRecord, NodeRecord
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, record_descriptor
from slsa_dist.verify._attestation import require_attestation

from support.attest import as_recorded

AK_A = "sha256:" + "aa" * 32


def _job(node: str, ak: str) -> Provenance:
    builder = ProvenanceBuilder(invocation_id="job-1")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": hashlib.sha256().hexdigest()}))
    evidence = EvidenceRecord(kind="tpm", status="verified", claims={"akSha256": ak})
    builder.add_byproduct(record_descriptor(name=f"node/{node}", media_type=MEDIA_NODE,
                                            record=NodeRecord(node=node,
                                                              evidence=(evidence,)).to_dict()))
    return Provenance.from_statement(builder.build())


def test_node_a_ak_does_not_vouch_for_node_m(tmp_path: Path) -> None:
    aks = tmp_path / "trusted-aks.txt"
    aks.write_text(f"{AK_A} node-a\n")
    trusted = load_trusted_aks(aks)
    assert require_attestation(_job("node-a", AK_A), "tpm", trusted_aks=trusted,
                               appraise=as_recorded).ok
    check = require_attestation(_job("node-m", AK_A), "tpm", trusted_aks=trusted,
                                appraise=as_recorded)
    assert not check.ok
    assert f"signed by AK {AK_A}, trusted for node(s) node-a, not for node-m" in check.detail
