"""SLSA Verification Summary Attestations (``https://slsa.dev/verification_summary/v1``).

Built by hand with the field types the spec defines: ``verifiedLevels`` is a
list, ``verifier.version`` a map, ``dependencyLevels`` counts are integers
(the in-toto-attestation 0.9.3 binding gets all three wrong).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

from slsa_dist import __version__
from slsa_dist.model._statement import ResourceDescriptor, Statement, format_timestamp
from slsa_dist.sign._dsse import Envelope, sign_statement
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._chain import ChainPolicy, ChainResult, levels

__all__ = ["VERIFIER_ID", "VSA_PREDICATE_TYPE", "summarize"]

from slsa_dist.verify._bundle import VSA_PREDICATE_TYPE

VERIFIER_ID = "https://slsa-dist.dev/verifiers/chain/v1"


def summarize(result: ChainResult, *, policy: ChainPolicy, resource_uri: str,
              signer: Signer, now: dt.datetime | None = None) -> Envelope:
    """A signed VSA for ``result``'s root artifact."""
    own_level, dependency_levels = levels(result)
    inputs = []
    for step in result.unique_steps():
        data = step.bundle.read_bytes()
        inputs.append({"uri": step.bundle.resolve().as_uri(),
                       "digest": {"sha256": hashlib.sha256(data).hexdigest()}})
    passed = result.ok
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {"slsa-dist": __version__}},
        "timeVerified": format_timestamp(now or dt.datetime.now(dt.timezone.utc)),
        "resourceUri": resource_uri,
        "policy": {"uri": (policy.source or Path("policy")).resolve().as_uri(),
                   "digest": {"sha256": policy.digest}},
        "inputAttestations": inputs,
        "verificationResult": "PASSED" if passed else "FAILED",
        "verifiedLevels": [f"SLSA_BUILD_LEVEL_{own_level}"] if passed else ["FAILED"],
        "dependencyLevels": dependency_levels,
        "slsaVersion": "1.2",
    }
    statement = Statement(
        subjects=(ResourceDescriptor(name=result.name, uri=resource_uri,
                                     digest={"sha256": result.root}),),
        predicate_type=VSA_PREDICATE_TYPE, predicate=predicate)
    return sign_statement(statement, [signer])
