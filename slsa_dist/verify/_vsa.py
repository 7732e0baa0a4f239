"""SLSA Verification Summary Attestations (``https://slsa.dev/verification_summary/v1``).

Built by hand with the field types the spec defines: ``verifiedLevels`` is a
list, ``verifier.version`` a map, ``dependencyLevels`` counts are integers
(the in-toto-attestation 0.9.3 binding gets all three wrong).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from slsa_dist import __version__
from slsa_dist.digest._manifest import Manifest, Resource
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import ResourceDescriptor, Statement, format_timestamp
from slsa_dist.sign._dsse import Envelope, sign_statement
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._chain import ChainPolicy, ChainResult, levels

__all__ = ["FILES_ANNOTATION", "VERIFIER_ID", "VSA_PREDICATE_TYPE", "summarize"]

from slsa_dist.verify._bundle import FILES_ANNOTATION, VSA_PREDICATE_TYPE

VERIFIER_ID = "https://slsa-dist.dev/verifiers/chain/v1"


def summarize(result: ChainResult, *, policy: ChainPolicy, resource_uri: str,
              signer: Signer, now: dt.datetime | None = None) -> Envelope:
    """A signed VSA for ``result``'s root artifact. Where its store named a step's home
    (a registry's referrer), ``inputAttestations`` carries that URI, not the local copy's
    path."""
    own_level, dependency_levels = levels(result)
    inputs = []
    for step in result.unique_steps():
        inputs.append({"uri": result.origins.get(step.bundle) or step.bundle.resolve().as_uri(),
                       "digest": {"sha256": step.bundle_sha256}})
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
        "slsaVersion": "1.2",
    }
    if passed:  # on a FAILED one, an empty map would claim "no dependencies"
        predicate["dependencyLevels"] = dependency_levels
    root_step = result.steps.get(result.root)
    files = _files(root_step.provenance, result.root) if root_step is not None else None
    statement = Statement(
        subjects=(ResourceDescriptor(name=result.name, uri=resource_uri,
                                     digest={"sha256": result.root},
                                     annotations={FILES_ANNOTATION: files} if files else {}),),
        predicate_type=VSA_PREDICATE_TYPE, predicate=predicate)
    return sign_statement(statement, [signer])


def _files(provenance: Provenance, root: str) -> dict[str, Any] | None:
    """What a VSA consumer's artifact check needs for ``root``, from the verified
    provenance: the OMS serialization to hash with, and the digest over every file's
    name and digest (:attr:`~slsa_dist.digest._manifest.Manifest.names_digest`). None when the
    provenance carries no file list for it (the VSA's artifact check then refuses it).
    """
    for subject in provenance.statement.subjects:
        if subject.digest.get("sha256") != root or not subject.name:
            continue
        record = provenance.checkpoint(subject.name)
        if record is None or not record.serialization:
            continue
        try:
            manifest = Manifest.from_oms(name=subject.name, serialization=record.serialization,
                                         resources=list(record.resources))
        except InputError:
            continue
        if root in manifest.subject_digests:
            return {"serialization": dict(record.serialization), "count":
                    len(manifest.resources), "sha256": manifest.names_digest}
    for checkpoint in provenance.checkpoints():  # one file of a verified checkpoint
        if checkpoint.serialization.get("hash_type") == "sha256" and \
                checkpoint.serialization.get("method", "files") == "files" and \
                any(r.get("digest") == root for r in checkpoint.resources):
            single = Manifest(name=".", algorithm="sha256", method="files", ignore_paths=(),
                              resources=(Resource(path=".", digest=root, algorithm="sha256"),))
            return {"serialization": single.serialization(), "count": 1,
                    "sha256": single.names_digest}
    return None
