"""Attest: hardware evidence bound to the job (TPM 2.0, TDX/SEV-SNP, NVIDIA GPUs).

Public: the :class:`Attester` protocol, the registry (:data:`ATTESTERS`, :data:`KINDS`)
and :class:`EvidenceVerdict`, what an appraisal concluded. On a node,
``collect_all`` asks every attester for evidence answering the coordinator's nonce
(bound to the job and node: ``_binding``); an attester that cannot run says why,
which is recorded too. At appraisal, ``verify_evidence`` checks each piece.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slsa_dist._internal.lazy import exports

if TYPE_CHECKING:
    from slsa_dist.attest._registry import ATTESTERS, KINDS, Attester
    from slsa_dist.attest._verdict import EvidenceVerdict

__all__ = ["ATTESTERS", "KINDS", "Attester", "EvidenceVerdict"]

__getattr__ = exports(__name__, {
    "ATTESTERS": "_registry",
    "Attester": "_registry",
    "EvidenceVerdict": "_verdict",
    "KINDS": "_registry",
})
