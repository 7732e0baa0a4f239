"""Verify: check a bundle, follow a model's chain, sign a summary of it.

Public: :func:`verify_bundle` (one bundle: signature, subjects against files on disk,
builder id, completeness; returns the verified :class:`~slsa_dist.model.Provenance` or
raises :class:`VerificationFailed`), :func:`check_bundle` (every check, passed or not),
:class:`Check`. Private modules: ``_bundle``, ``_attestation`` (``--require-attestation``:
evidence re-appraised per node), ``_chain`` (from a model back through its inputs'
provenance, under a policy), ``_store`` (an attestation store indexed by subject
digest), ``_vsa`` (a signed Verification Summary Attestation), ``_oci`` (registries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slsa_dist._internal.lazy import exports

if TYPE_CHECKING:
    from slsa_dist.verify._bundle import (
        VSA_PREDICATE_TYPE,
        Check,
        VerificationFailed,
        check_bundle,
        verify_bundle,
    )
    from slsa_dist.verify._vsa import VERIFIER_ID

__all__ = ["VERIFIER_ID", "VSA_PREDICATE_TYPE", "Check", "VerificationFailed", "check_bundle",
           "verify_bundle"]

__getattr__ = exports(__name__, {
    "Check": "_bundle",
    "VERIFIER_ID": "_vsa",
    "VSA_PREDICATE_TYPE": "_bundle",
    "VerificationFailed": "_bundle",
    "check_bundle": "_bundle",
    "verify_bundle": "_bundle",
})
