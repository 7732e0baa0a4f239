"""PyTorch: the samplers that record which shards each rank read, and a DCP writer
that digests each file as it is written (explicit capture, for those who want control).

* :class:`RecordingSampler`, :class:`RecordingIterable`, :class:`Shard`,
  :func:`shards_from_files`: which shards each rank read
* :class:`DigestingFileSystemWriter`: DCP checkpoints digested as they are written
* ``slsa-torchrun`` / ``torchrun --logs-specs slsa``: :mod:`slsa_dist.torch.plugin`

A thin public name over :mod:`slsa_dist.capture` (ADR 0013). Importing this package
imports torch; the rest of slsa-dist does not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slsa_dist.capture import _auto  # noqa: F401 -- in a DataLoader, samplers count batches handed out
from slsa_dist.capture._samplers import (
    RecordingIterable,
    RecordingSampler,
    Shard,
    shards_from_files,
)

if TYPE_CHECKING:
    from slsa_dist.capture._dcp import DigestingFileSystemWriter

__all__ = [
    "DigestingFileSystemWriter",
    "RecordingIterable",
    "RecordingSampler",
    "Shard",
    "shards_from_files",
]


def __getattr__(name: str) -> Any:
    # torch.distributed.checkpoint takes about a second to import: only when asked for
    if name == "DigestingFileSystemWriter":
        from slsa_dist.capture._dcp import DigestingFileSystemWriter

        return DigestingFileSystemWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
