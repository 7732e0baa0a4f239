"""slsa-dist: one signed SLSA provenance for a whole distributed training job.

The package is built in floors, each importing only those below it, in the order
data flows (ADR 0013, docs/architecture.md)::

    model/         the Statement, typed records, the ledger, ONE digest rule
    digest/        hashing files and folders into OMS-compatible manifests
    sign/          keys (PEM, PKCS#11), DSSE, bundle formats (a registry), the job CA
    attest/        hardware evidence, one module per kind behind an Attester registry
    capture/       inside the rank: runtime, samplers, audit hook, save hooks
    collect/       agent, spool, relay, wire; coordinator, merge, journal
    integrations/  torch, Ray, Hugging Face, Lightning, exec: one contract
    verify/        a bundle, a model's chain, the store, VSAs, OCI
    report/        what a person reads
    cli/           flags -> library calls

Public API (docs/api.md): for training code :func:`init`, :func:`record_artifact`,
:func:`record_input`, :func:`record_hyperparameters` (or nothing at all, under
``slsa-torchrun ... -m slsa_dist.exec``); the integrations by the names users type
(``slsa_dist.torch``, ``slsa_dist.ray``, ``slsa_dist.hf``, ``slsa_dist.lightning``,
``slsa_dist.exec``); :mod:`slsa_dist.verify`, :mod:`slsa_dist.model`, the key loaders
in :mod:`slsa_dist.sign`, :mod:`slsa_dist.errors`. Every ``_``-prefixed module is
private.

Example (verify what a job produced)::

    from slsa_dist.sign import load_verifier
    from slsa_dist.verify import AllOf, Artifacts, Complete, verify_bundle

    result = verify_bundle("job.intoto.jsonl", keys=[load_verifier("signing.pub")],
                           policy=AllOf(Artifacts("checkpoints/final"), Complete()))
    provenance = result.provenance
    print(provenance.invocation_id, [s.name for s in provenance.statement.subjects])
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slsa_dist.capture._runtime import record_artifact, record_hyperparameters, record_input
    from slsa_dist.integrations._contract import init

_RUNTIME = ("record_artifact", "record_hyperparameters", "record_input")


def __getattr__(name: str) -> Any:
    """The training-code API, imported on first use: ``slsa-dist verify`` and the other
    commands do not pay for gRPC and the agent they never use."""
    if name == "init":
        from slsa_dist.integrations import _contract

        return _contract.init
    if name in _RUNTIME:
        from slsa_dist.capture import _runtime

        return getattr(_runtime, name)
    raise AttributeError(f"module 'slsa_dist' has no attribute {name!r}")


__all__ = ["__version__", "init", "record_artifact", "record_hyperparameters", "record_input"]
