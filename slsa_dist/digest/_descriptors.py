"""Model objects made from a manifest: an artifact's subject and file list, an input.

The bridge from :mod:`slsa_dist.digest` (what was hashed) to :mod:`slsa_dist.model`
(how a provenance names it): a directory is ONE subject whose ``sha256`` is its OMS
manifest root, so ``model_signing`` and slsa-dist name it the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from slsa_dist.digest._manifest import Manifest
from slsa_dist.model._records import Checkpoint
from slsa_dist.model._statement import ResourceDescriptor, record_descriptor

__all__ = ["artifact_descriptors", "checkpoint_record", "input_descriptor"]


def artifact_descriptors(manifest: Manifest, *, name: str | None = None,
                         uri: str | None = None) -> tuple[ResourceDescriptor, ResourceDescriptor]:
    """The subject for an artifact and the byproduct holding its per-file list.

    A plain file becomes a subject with its own ``sha256``; a directory (a
    sharded checkpoint) becomes ONE subject whose ``sha256`` is the OMS
    manifest root, so ``model_signing`` and slsa-dist name it the same way.
    """
    label = name or manifest.name
    subject = ResourceDescriptor(name=label, uri=uri, digest={"sha256": manifest.identity})
    record = checkpoint_record(manifest, name=label)
    return subject, record_descriptor(name=f"checkpoint/{label}", media_type=Checkpoint.MEDIA_TYPE,
                                      record=record.to_dict())


def checkpoint_record(manifest: Manifest, *, name: str) -> Checkpoint:
    """The ``checkpoint/<name>`` record of a manifest: its root and every file by digest."""
    return Checkpoint(
        name=name,
        root_digest={"sha256": manifest.root_digest},
        serialization=manifest.serialization(),
        resources=tuple({"name": r.name, "algorithm": r.algorithm, "digest": r.digest}
                        for r in manifest.resources),
        total_bytes=manifest.total_bytes,
    )


def input_descriptor(manifest: Manifest, path: str | os.PathLike[str], *, kind: str,
                     name: str | None = None, uri: str | None = None) -> ResourceDescriptor:
    """A dependency (a dataset, a base model) named by its digest, as subjects are."""
    return ResourceDescriptor(name=name or Path(path).name,
                              uri=uri or f"file://{Path(path).resolve()}",
                              digest={"sha256": manifest.identity},
                              annotations={"slsadist_kind": kind,
                                           "slsadist_files": len(manifest.resources)})


