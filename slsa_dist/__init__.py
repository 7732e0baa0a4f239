"""slsa-dist: one signed SLSA provenance for a whole distributed training job.

How the pieces fit::

    rank process                 node                       coordinator (one per job)
    ------------                 ----                       -------------------------
    slsa_dist.agent.RankAgent -- gRPC, batched, acked, -->  slsa_dist.coordinator
      shards read, files           spooled to disk            journal (SQLite WAL)
      written, artifacts                                      _internal.merge (pure)
                                                              -> provenance.Statement
                                                              -> dsse envelope, signed
                                                              -> <job>.intoto.jsonl

Public modules, by what a user does:

* :mod:`slsa_dist.provenance` -- the Statement / SLSA Provenance v1 model.
* :mod:`slsa_dist.dsse`, :mod:`slsa_dist.keys` -- signing and envelopes.
* :mod:`slsa_dist.digest` -- fast hashing, OMS-compatible manifests.
* :mod:`slsa_dist.verify` -- checking a bundle against keys and artifacts.
* :mod:`slsa_dist.agent`, :mod:`slsa_dist.coordinator` -- collection over gRPC.
* :mod:`slsa_dist.errors` -- one root error, split by who is at fault.
* :mod:`slsa_dist.torch` -- torchrun plugin, data capture, DCP writer.
* :func:`init`, :func:`record_artifact`, :func:`record_input` -- for training code.

Everything under ``slsa_dist._internal`` and ``slsa_dist._pb`` is private.

Example (verify what a job produced)::

    from slsa_dist.keys import load_verifier
    from slsa_dist.verify import verify_bundle

    provenance = verify_bundle("job.intoto.jsonl", keys=[load_verifier("signing.pub")],
                               artifacts=["checkpoints/final"])
    print(provenance.invocation_id, [s.name for s in provenance.statement.subjects])
"""

from __future__ import annotations

__version__ = "0.1.0"

from slsa_dist._internal.runtime import (
    init,
    record_artifact,
    record_hyperparameters,
    record_input,
)

__all__ = ["__version__", "init", "record_artifact", "record_hyperparameters", "record_input"]
