"""Which data each rank consumed, recorded compactly.

* :class:`RecordingSampler` wraps the index sampler of a map-style dataset.
  The sampler runs in the rank's main process (DataLoader workers only
  receive indices), so it sees every index without IPC. Per epoch and per
  shard it reports the number of samples, a SHA-256 over the indices in
  order (each a little-endian int64), and the sampler's parameters (seed,
  replicas, rank, shuffle): with those a verifier can regenerate the exact index sequence of a
  ``DistributedSampler`` and compare digests, without the provenance holding
  per-sample lists. Inside a DataLoader only the batches its iterator handed to
  the loop count: workers draw ``prefetch_factor`` batches ahead, and a loop that
  stops early did not consume those.
* :class:`RecordingIterable` wraps an iterable dataset whose samples name
  their shard (webdataset's ``__url__``). It runs in DataLoader workers and
  reports per shard as the shard changes; each forked worker reports as its
  own sender. A local shard file is hashed once per process and file
  version (device, inode, size, mtime, ctime), not at every switch to it:
  with ``persistent_workers=True`` once per job, otherwise once per worker
  and epoch.
"""

from __future__ import annotations

import hashlib
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from slsa_dist.capture import _runtime
from slsa_dist.digest._manifest import digest_path
from slsa_dist.errors import InputError

__all__ = ["LOADER_HOOKS", "RecordingIterable", "RecordingSampler", "Shard",
           "shards_from_files"]

T = TypeVar("T")
_CHUNK = 1024  # indices tallied per numpy call


@dataclass(frozen=True, kw_only=True)
class Shard:
    """One shard of a dataset and the global index range ``[start, stop)`` it holds."""

    name: str
    digest: Mapping[str, str]
    start: int
    stop: int
    uri: str = ""


def shards_from_files(files: Sequence[str | os.PathLike[str]], sizes: Sequence[int],
                      *, root: str | os.PathLike[str] | None = None) -> list[Shard]:
    """Shards for a dataset concatenated from ``files`` holding ``sizes`` samples each."""
    if len(files) != len(sizes):
        raise InputError(f"shards: expected one size per file, found {len(files)} files "
                         f"and {len(sizes)} sizes")
    shards, start = [], 0
    for path, size in zip(files, sizes, strict=True):
        p = Path(path)
        name = p.resolve().relative_to(Path(root).resolve()).as_posix() if root else p.name
        digest = digest_path(p).identity
        shards.append(Shard(name=name, digest={"sha256": digest}, start=start,
                            stop=start + size, uri=f"file://{p.resolve()}"))
        start += size
    return shards


class _Tally:
    __slots__ = ("count", "hasher")

    def __init__(self) -> None:
        self.count = 0
        self.hasher = hashlib.sha256()


def _sampler_parameters(sampler: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"type": type(sampler).__name__}
    for attribute in ("seed", "num_replicas", "rank", "shuffle", "drop_last", "num_samples",
                      "total_size"):
        try:
            value = getattr(sampler, attribute)
        except Exception:  # noqa: S112 -- absent, or a property that fails: left out
            continue
        if value is None or isinstance(value, (bool, int, str)):
            params[attribute] = value
        else:  # a number type of numpy or torch: as text, never its object
            try:
                params[attribute] = str(value)
            except Exception:  # noqa: S112
                continue
    return params


class RecordingSampler(Generic[T]):
    """Wraps a sampler; reports per epoch which shards (and how much of them) it yielded.

    Args:
        sampler: any iterable of dataset indices (``DistributedSampler`` typically).
        shards: the dataset's shards by index range; unknown indices go to one
            pseudo-shard named ``dataset`` with ``dataset_digest``.
        dataset_digest: the digest of a single-shard dataset.
    """

    def __init__(self, sampler: Any, *, shards: Sequence[Shard] = (),
                 dataset_digest: Mapping[str, str] | None = None,
                 dataset_name: str = "dataset") -> None:
        if not shards and not dataset_digest:
            raise InputError("RecordingSampler: expected shards or a dataset_digest, found "
                             "neither (the provenance must name the data by digest)")
        self.sampler = sampler
        self._shards = sorted(shards, key=lambda s: s.start)
        self._starts = [s.start for s in self._shards]
        import numpy as np

        self._starts_array = np.asarray(self._starts, dtype="<i8")
        self._stops_array = np.asarray([s.stop for s in self._shards], dtype="<i8")
        self._fallback = Shard(name=dataset_name, digest=dict(dataset_digest or {}), start=0,
                               stop=2**62)
        self.epoch = 0
        # Set by a DataLoader iterator about to draw a pass from this sampler: that pass
        # counts only what the iterator hands to the loop (``capture._auto._HandOff``).
        self._handoff: Any = None
        _follow_loaders()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[T]:
        # Each index is taken from the sampler only when the loop asks for it (a sampler
        # that adapts to training, or fails part way, behaves as unwrapped) and tallied a
        # chunk at a time with numpy: per index, the training loop pays one append and
        # one yield, not a shard lookup and a hash update. Recording never fails the
        # loop: what it cannot tally or report is a capture gap.
        handoff, self._handoff = self._handoff, None
        if handoff is not None:  # a DataLoader's pass: its iterator says what was consumed
            for index in self.sampler:
                handoff.drawn(index)
                yield index
            return
        tallies: dict[str, tuple[Shard, _Tally]] = {}
        chunk: list[Any] = []
        broken = False
        try:
            for index in self.sampler:
                chunk.append(index)  # counted when handed out: a close at the yield keeps it
                yield index
                if len(chunk) >= _CHUNK:
                    if not broken:
                        broken = not self._safely(self._tally, tallies, chunk)
                    chunk = []
        finally:  # also runs when the loop stops mid-epoch (the generator is closed)
            if chunk and not broken:
                broken = not self._safely(self._tally, tallies, chunk)
            if not broken:
                self._safely(self._report, tallies)

    def _safely(self, step: Callable[..., None], *args: Any) -> bool:
        try:
            step(*args)
        except Exception as exc:  # the loop goes on; the record says so
            _runtime.capture_gap(f"data consumed through {type(self.sampler).__qualname__}",
                                 exc)
            return False
        return True

    def _tally(self, tallies: dict[str, tuple[Shard, _Tally]], chunk: Sequence[Any]) -> None:
        import numpy as np

        indices = np.asarray([operator.index(i) for i in chunk], dtype="<i8")
        if self._shards:
            positions = np.searchsorted(self._starts_array, indices, side="right") - 1
            inside = (positions >= 0) & (indices < self._stops_array[positions.clip(0)])
            positions = np.where(inside, positions, -1)
        else:
            positions = np.full(len(indices), -1)
        for position in dict.fromkeys(positions.tolist()):  # first-seen order
            shard = self._shards[position] if position >= 0 else self._fallback
            entry = tallies.get(shard.name)
            if entry is None:
                entry = tallies[shard.name] = (shard, _Tally())
            mine = indices[positions == position]
            entry[1].count += len(mine)
            entry[1].hasher.update(mine.tobytes())

    def _report(self, tallies: Mapping[str, tuple[Shard, _Tally]]) -> None:
        runtime = _runtime.current()
        if runtime is None or not tallies:
            return
        params = _sampler_parameters(self.sampler)
        for shard, tally in tallies.values():
            runtime.agent.record_shard(shard.name, shard.digest, uri=shard.uri,
                                       samples=tally.count, index_digest=tally.hasher.hexdigest(),
                                       epoch=self.epoch, sampler=params)


# Run when a RecordingSampler is made: ``capture._auto`` (which imports this module, and
# which ``slsa_dist.torch`` imports) adds the patch that makes DataLoader iterators say
# which drawn batches reached the loop. Without it a pass counts what the sampler
# yielded, prefetched batches included.
LOADER_HOOKS: list[Callable[[], object]] = []


def _follow_loaders() -> None:
    for hook in LOADER_HOOKS:
        try:
            hook()
        except Exception as exc:  # counted as yielded, as before; said
            _runtime.capture_gap("DataLoader iterators (batches handed to the loop)", exc)


class RecordingIterable(Generic[T]):
    """Wraps an iterable dataset whose samples name their shard.

    Args:
        dataset: yields samples (mappings) carrying ``shard_key``.
        shard_key: the sample field naming the shard (webdataset: ``__url__``).
        digest: maps a shard name to its digest; default: the SHA-256 of the
            local file of that name (paths and ``file://`` URLs).
    """

    def __init__(self, dataset: Any, *, shard_key: str = "__url__",
                 digest: Callable[[str], Mapping[str, str]] | None = None, epoch: int = 0) -> None:
        self.dataset = dataset
        self.shard_key = shard_key
        self._digest = digest or _file_digest
        self.epoch = epoch

    def __iter__(self) -> Iterator[T]:
        current: str | None = None
        count = 0
        try:
            for sample in self.dataset:
                name = self._shard_of(sample)
                if name != current:
                    self._report(current, count)
                    current, count = name, 0
                count += 1
                yield sample
        finally:
            self._report(current, count)

    def _shard_of(self, sample: Any) -> str | None:
        """The shard ``sample`` names; None (and a capture gap) when it names none."""
        try:
            name = sample.get(self.shard_key) if isinstance(sample, Mapping) else None
        except Exception as exc:  # a mapping that fails: its sample goes on
            _runtime.capture_gap(f"shard of samples from {type(self.dataset).__qualname__}", exc)
            return None
        if name is None:
            _runtime.capture_gap(f"shard of samples from {type(self.dataset).__qualname__}",
                                 f"a sample without a string {self.shard_key!r}")
            return None
        if not isinstance(name, str):
            _runtime.capture_gap(f"shard of samples from {type(self.dataset).__qualname__}",
                                 f"{self.shard_key!r} is a {type(name).__qualname__}, "
                                 "not a string")
            return None
        return name

    def _report(self, name: str | None, count: int) -> None:
        try:
            runtime = _runtime.current()
            if runtime is None or name is None or count == 0:
                return
            runtime.agent.record_shard(Path(name.removeprefix("file://")).name,
                                       self._digest(name), uri=name, samples=count,
                                       epoch=self.epoch,
                                       sampler={"type": "iterable", "worker": _worker_id()})
        except Exception as exc:  # the samples were read; the record says so
            _runtime.capture_gap(f"shard {name!r}", exc)


_FileVersion = tuple[str, int, int, int, int, int]
_SHARD_DIGESTS: dict[_FileVersion, Mapping[str, str]] = {}  # per process; a fork inherits it


def _file_digest(name: str) -> Mapping[str, str]:
    path = name.removeprefix("file://")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"shard {name!r}: expected a readable local file, found {exc}") from None
    version = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _SHARD_DIGESTS.get(version)
    if digest is None:  # a rewritten file is a new version: hashed again
        digest = _SHARD_DIGESTS[version] = {"sha256": digest_path(path).identity}
    return digest


def _worker_id() -> int:
    try:
        from torch.utils.data import get_worker_info
    except ImportError:
        return 0
    info = get_worker_info()
    return 0 if info is None else int(info.id)
