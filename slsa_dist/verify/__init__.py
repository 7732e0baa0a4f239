"""Verify: check a bundle against a policy, follow a model's chain, sign a summary of it.

Public: :func:`verify_bundle` (one bundle: signature, then every requirement of a
policy; returns the :class:`Result` or raises :class:`VerificationFailed`),
:func:`check_bundle` (the same :class:`Result`, passed or not), :class:`Check`; the
policy: :class:`Requirement` (a protocol over :class:`Evidence`), :class:`AllOf`,
:class:`AnyOf`, :class:`ByKind`, :class:`BuilderId`, :class:`Artifacts`,
:class:`Complete`, :class:`Outputs`, :class:`Rank`, :class:`Attestation` (with
:class:`ReferenceValues`), :class:`VsaSummary`. A requirement that cannot be checked
fails; an empty policy passes nothing. Private modules: ``_bundle`` (the signature,
the record ledger), ``_policy`` (the requirements), ``_result``, ``_artifact``
(files on disk against signed file lists), ``_attestation`` (evidence re-appraised
per node), ``_chain`` (from a model back through its inputs' provenance, under a chain
policy), ``_store`` (an attestation store indexed by subject digest), ``_vsa`` (a
signed Verification Summary Attestation), ``_oci`` (registries).

Example::

    from slsa_dist.sign import load_verifier
    from slsa_dist.verify import AllOf, Artifacts, BuilderId, Complete, verify_bundle

    result = verify_bundle("job.intoto.jsonl", keys=[load_verifier("signing.pub")],
                           policy=AllOf(BuilderId("https://slsa-dist.dev/builders/coordinator/v1"),
                                        Artifacts("checkpoints/final"), Complete()))
    print(result.provenance.invocation_id)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slsa_dist._internal.lazy import exports

if TYPE_CHECKING:
    from slsa_dist.verify._bundle import VSA_PREDICATE_TYPE, check_bundle, verify_bundle
    from slsa_dist.verify._policy import (
        AllOf,
        AnyOf,
        Artifacts,
        Attestation,
        BuilderId,
        ByKind,
        Complete,
        Outputs,
        Rank,
        ReferenceValues,
        Requirement,
        VsaSummary,
    )
    from slsa_dist.verify._result import Check, Evidence, Result, VerificationFailed
    from slsa_dist.verify._vsa import VERIFIER_ID

__all__ = ["VERIFIER_ID", "VSA_PREDICATE_TYPE", "AllOf", "AnyOf", "Artifacts", "Attestation",
           "BuilderId", "ByKind", "Check", "Complete", "Evidence", "Outputs", "Rank",
           "ReferenceValues", "Requirement", "Result", "VerificationFailed", "VsaSummary",
           "check_bundle", "verify_bundle"]

__getattr__ = exports(__name__, {
    "AllOf": "_policy",
    "AnyOf": "_policy",
    "Artifacts": "_policy",
    "Attestation": "_policy",
    "BuilderId": "_policy",
    "ByKind": "_policy",
    "Check": "_result",
    "Complete": "_policy",
    "Evidence": "_result",
    "Outputs": "_policy",
    "Rank": "_policy",
    "ReferenceValues": "_policy",
    "Requirement": "_policy",
    "Result": "_result",
    "VERIFIER_ID": "_vsa",
    "VSA_PREDICATE_TYPE": "_bundle",
    "VerificationFailed": "_result",
    "VsaSummary": "_policy",
    "check_bundle": "_bundle",
    "verify_bundle": "_bundle",
})
