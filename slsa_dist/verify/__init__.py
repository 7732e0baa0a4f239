"""Verify: check a bundle, follow a model's chain, summarize the result.

* :mod:`.bundle` -- one bundle: signature, subjects against files on disk,
  builder id, completeness (:func:`verify_bundle`, :func:`check_bundle`).
* :mod:`.chain` -- from a model back through its inputs' provenance, under a policy.
* :mod:`.store` -- an attestation store indexed by subject digest.
* :mod:`.vsa` -- a signed Verification Summary Attestation of a chain.

Hardware evidence policy (``--require-attestation``) lives with the
attesters in :mod:`slsa_dist.attest.policy`.
"""

from __future__ import annotations

from slsa_dist.verify.bundle import (
    VSA_PREDICATE_TYPE,
    Check,
    VerificationFailed,
    check_bundle,
    verify_bundle,
)

__all__ = ["VSA_PREDICATE_TYPE", "Check", "VerificationFailed", "check_bundle", "verify_bundle"]
