"""--require-attestation on hand-built provenance: which nodes must show which evidence."""

from __future__ import annotations

import pytest

from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import (
    EvidenceRecord,
)
from slsa_dist.verify._attestation import require_attestation

from support.attest import as_recorded, with_evidence

AK = "sha256:" + "ab" * 32


def tpm(status: str = "verified", ak: str = AK) -> EvidenceRecord:
    return EvidenceRecord(kind="tpm", status=status, reason="" if status == "verified" else "bad",
                          claims={"akSha256": ak})


def provenance(nodes: dict[str, tuple[EvidenceRecord, ...]],
               ranks: dict[int, str] | None = None) -> Provenance:
    return with_evidence(nodes, ranks=ranks)


def test_every_node_with_verified_evidence_passes() -> None:
    check = require_attestation(provenance({"a": (tpm(),), "b": (tpm(),)}), "tpm", appraise=as_recorded)
    assert check.ok, check.detail
    assert check.detail == ("verified tpm evidence from all 2 node(s), re-appraised from the raw "
                            "evidence in the bundle")


def test_a_node_with_failed_evidence_is_named_with_the_reason() -> None:
    check = require_attestation(provenance({"a": (tpm(),), "b": (tpm("failed"),)}), "tpm", appraise=as_recorded)
    assert not check.ok
    assert check.detail.endswith("found none for: b (tpm: failed: bad)")


def test_a_node_that_ran_ranks_but_never_reported_is_caught() -> None:
    check = require_attestation(provenance({"a": (tpm(),)}, ranks={0: "a", 1: "ghost"}), "tpm", appraise=as_recorded)
    assert not check.ok
    assert "ghost (ran ranks, but no node agent reported for it)" in check.detail


def test_a_node_that_ran_no_rank_is_not_asked() -> None:
    check = require_attestation(provenance({"a": (tpm(),), "controller": ()}, ranks={0: "a"}),
                                "tpm", appraise=as_recorded)
    assert check.ok, check.detail


def test_trusted_aks_count_only_listed_keys() -> None:
    other = "sha256:" + "cd" * 32
    check = require_attestation(provenance({"a": (tpm(ak=other),)}), "tpm",
                                trusted_aks=frozenset({(AK, "a")}), appraise=as_recorded)
    assert not check.ok
    assert f"signed by AK {other}, not a trusted AK" in check.detail


def test_any_kind_counts_for_any() -> None:
    snp = EvidenceRecord(kind="snp", status="verified")
    assert require_attestation(provenance({"a": (snp,)}), "any", appraise=as_recorded).ok
    assert not require_attestation(provenance({"a": (snp,)}), "tpm", appraise=as_recorded).ok


def test_no_nodes_at_all_fails() -> None:
    check = require_attestation(provenance({}), "tpm", appraise=as_recorded)
    assert (check.ok, check.detail) == (False, "expected node records with evidence, found "
                                               "no nodes")


def test_trusted_aks_for_another_kind_is_a_usage_error() -> None:
    with pytest.raises(InputError, match="expected them with a tpm requirement, found 'snp'"):
        require_attestation(provenance({}), "snp", trusted_aks=frozenset({(AK, "a")}))
