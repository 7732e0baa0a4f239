"""slsa-dist: one signed SLSA provenance for a whole distributed training job.

The package is laid out by the stage each module serves (ADR 0007)::

    capture/   in the training process and on its node: what a rank read and
               wrote, the node's inventory        (+ torch/, ray.py, exec.py)
    collect/   agent -> gRPC -> coordinator: journal, then merge into ONE Statement
    attest/    hardware evidence: TPM, TDX/SEV-SNP (configfs-tsm), NVIDIA CC
    sign/      keys, DSSE envelopes, the job CA (mutual TLS), OMS signatures
    verify/    a bundle, a model's chain, the attestation store, VSAs
    report/    HTML and terminal summaries
    provenance.py, records.py, digest.py, errors.py: the model every stage shares

Flow: ``capture`` records -> ``collect`` journals and merges -> ``sign``
wraps the Statement in a DSSE envelope -> ``verify`` re-checks it ->
``report`` shows it. ``docs/architecture.md`` draws it.

For training code: :func:`init`, :func:`record_artifact`,
:func:`record_input`, :func:`record_hyperparameters` (or nothing at all, under
``slsa-torchrun ... -m slsa_dist.exec``). Everything under
``slsa_dist._internal`` and ``slsa_dist._pb`` is private.

Example (verify what a job produced)::

    from slsa_dist.sign.keys import load_verifier
    from slsa_dist.verify import verify_bundle

    provenance = verify_bundle("job.intoto.jsonl", keys=[load_verifier("signing.pub")],
                               artifacts=["checkpoints/final"])
    print(provenance.invocation_id, [s.name for s in provenance.statement.subjects])
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from slsa_dist._internal import compat as _compat

if TYPE_CHECKING:
    from slsa_dist.capture.runtime import (
        init,
        record_artifact,
        record_hyperparameters,
        record_input,
    )

_compat.install()
_RUNTIME = ("init", "record_artifact", "record_hyperparameters", "record_input")


def __getattr__(name: str) -> Any:
    """The training-code API, imported on first use: ``slsa-dist verify`` and the other
    commands do not pay for gRPC and the agent they never use."""
    if name in _RUNTIME:
        from slsa_dist.capture import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'slsa_dist' has no attribute {name!r}")

__all__ = ["__version__", "init", "record_artifact", "record_hyperparameters", "record_input"]
