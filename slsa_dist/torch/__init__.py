"""PyTorch integration: the torchrun plugin, data capture, and a digesting DCP writer.

* ``slsa-torchrun`` / ``torchrun --logs-specs slsa``: :mod:`slsa_dist.torch.plugin`
* :class:`~slsa_dist.torch.data.RecordingSampler`,
  :class:`~slsa_dist.torch.data.RecordingIterable`: which shards each rank read
* :class:`~slsa_dist.torch.checkpoint.DigestingFileSystemWriter`: DCP checkpoints
  digested as they are written

Importing this package imports torch; the rest of slsa-dist does not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slsa_dist.torch.data import RecordingIterable, RecordingSampler, Shard, shards_from_files

if TYPE_CHECKING:
    from slsa_dist.torch.checkpoint import DigestingFileSystemWriter

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
        from slsa_dist.torch.checkpoint import DigestingFileSystemWriter

        return DigestingFileSystemWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
