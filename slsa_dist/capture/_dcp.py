"""A ``torch.distributed.checkpoint`` writer that digests every file as it writes it.

Each rank reports the SHA-256 of every ``.distcp`` file it wrote; the
coordinator rank also reports ``.metadata`` and the list of files the
checkpoint must contain, so the coordinator detects a missing shard.

Digests are taken while writing: the writer's file streams hash every byte
on its way to disk, so no file is read a second time. A stream hands each
write to a hashing thread of its own just before passing it to the file, so
the hasher reads a tensor while the file takes it; when the file closes,
only what hashing has not caught up with is left (on disk, nothing: the
write and ``fsync`` take longer than the hashing). Large buffers (tensor
storage, alive for the whole save) are hashed without a copy; small writes
(zip headers from reused buffers) are copied. If the byte stream and the
file may differ (a seek, or a file that took less than it was offered;
nothing in DCP does either today), the file is read once more instead.

Writes are not cut into slices: with the hasher started before the write,
slicing bought no overlap and cost 1-3% in thread hand-offs (measured in
``docs/performance.md``).
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch.distributed.checkpoint.filesystem import FileSystem, FileSystemWriter
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.planner import SavePlan, SavePlanner
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from slsa_dist.capture import _runtime
from slsa_dist.digest._manifest import digest_path, new_hasher

__all__ = ["DigestingFileSystemWriter"]

_METADATA = ".metadata"


_COPY_BELOW = 1 << 20  # smaller writes come from reused buffers: copy them
_QUEUE_DEPTH = 64  # bounds what waits for the hasher (large entries are zero-copy views)


class _HashingStream(io.RawIOBase):
    """A write-only file that hashes what passes through it, on a thread of its own.

    ``hashed`` counts the bytes handed to the hasher; ``diverged`` says the hashed
    stream and the file may differ (then the caller digests the file instead).
    """

    def __init__(self, raw: Any, algorithm: str, *, hashing: bool = True) -> None:
        self.raw = raw
        self.hasher = new_hasher(algorithm)
        self.hashed = 0
        self.diverged = False
        self._hashing = hashing
        self._queue: queue.Queue[memoryview | bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._hash, name="slsa-dcp-hash", daemon=True)
        if hashing:
            self._thread.start()

    def _hash(self) -> None:
        update = self.hasher.update
        while (chunk := self._queue.get()) is not None:
            update(chunk)

    def digest(self) -> str:
        """Wait for the hasher and return the hex digest (call once, after writing)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        return self.hasher.hexdigest()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Write ``data``; returns the bytes written (short only if the file itself
        took less, as a raw write may: then the stream is ``diverged``)."""
        view = memoryview(data).cast("B")
        if self._hashing:  # hashed while the file takes it, not after
            self._queue.put(view if len(view) >= _COPY_BELOW else bytes(view))
        self.hashed += len(view)
        written = self.raw.write(view)
        count = len(view) if written is None else int(written)
        if count < len(view):
            self.diverged = True  # the hasher saw bytes the file did not take
        return count

    def tell(self) -> int:
        return int(self.raw.tell())

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.diverged = True
        return int(self.raw.seek(offset, whence))

    def fileno(self) -> int:
        return int(self.raw.fileno())

    def flush(self) -> None:
        if not self.raw.closed:  # DCP closes streams itself inside the with-block
            self.raw.flush()

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


class _HashingFileSystem(FileSystem):
    def __init__(self, algorithm: str, *, hashing: bool = True) -> None:
        super().__init__()
        self.algorithm = algorithm
        self.hashing = hashing  # False only for the benchmark's unhashed baseline
        self.digests: dict[str, tuple[str, int]] = {}  # path -> (digest, size)

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str
                      ) -> Generator[io.IOBase, None, None]:
        if "w" not in mode:
            with super().create_stream(path, mode) as stream:
                yield stream
            return
        with super().create_stream(path, mode) as raw:
            stream = _HashingStream(raw, self.algorithm, hashing=self.hashing)
            yield stream
            stream.flush()
        size = Path(path).stat().st_size
        digest = stream.digest()
        if self.hashing and not stream.diverged and stream.hashed == size:
            self.digests[str(path)] = (digest, size)
        else:
            self.digests.pop(str(path), None)  # stream and file differ: digest it from disk


class DigestingFileSystemWriter(FileSystemWriter):
    """``FileSystemWriter`` that reports what each rank wrote to the slsa-dist agent.

    Args:
        path: the checkpoint directory (as for ``FileSystemWriter``).
        role: ``checkpoint`` (intermediate) or ``final`` (the model: a subject).
        algorithm: per-file digest, ``sha256`` (default) or ``blake3`` (2.5x less
            CPU per byte; the subject digest is a SHA-256 manifest root either way,
            as in OMS, but it differs from a ``sha256``-files root of the same files).
        name: the artifact's name in the provenance (default: ``path``
            relative to ``SLSA_ARTIFACT_ROOT`` or the working directory).
        **kwargs: passed to ``FileSystemWriter``.
    """

    def __init__(self, path: str | os.PathLike[str], *, role: str = "checkpoint",
                 name: str | None = None, algorithm: str = "sha256", **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.fs: _HashingFileSystem = _HashingFileSystem(algorithm)
        self._role = role
        self._name = name
        self.records: list[dict[str, Any]] = []

    def _artifact(self) -> str:
        if self._name:
            return self._name
        runtime = _runtime.current()
        return runtime.artifact_name(self.path) if runtime else Path(self.path).as_posix()

    def _report(self, files: Iterable[str]) -> None:
        runtime = _runtime.current()
        for relative in sorted(files):
            full = str(self.fs.concat_path(self.path, relative))
            algorithm = self.fs.algorithm
            digest, size = self.fs.digests.get(full) or _read_digest(full, algorithm)
            self.records.append({"file": relative, algorithm: digest, "size": size})
            if runtime is not None:
                runtime.agent.record_file(self._artifact(), relative, {algorithm: digest},
                                          size=size, role=self._role)

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        before = set(self.fs.digests)
        future = super().write_data(plan, planner)
        results = future.wait()  # FileSystemWriter completes synchronously
        # A rank whose plan is empty (DCP gives replicated tensors to a few ranks) still
        # creates its data file, empty and absent from the results: it is reported too,
        # or the checkpoint directory would hold a file no record names.
        try:
            created = {Path(p).name for p in set(self.fs.digests) - before}  # this save's
            self._report({r.storage_data.relative_path for r in results} | created)
        except Exception as exc:  # the checkpoint is written; its record is not
            _runtime.capture_gap(f"checkpoint files written to {self.path}", exc)
        return future

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        super().finish(metadata, results)  # coordinator rank only: writes .metadata
        try:
            self._report_finish(results)
        except Exception as exc:  # the checkpoint is written; its record is not
            _runtime.capture_gap(f"checkpoint {self.path} (its metadata and file list)", exc)

    def _report_finish(self, results: list[list[WriteResult]]) -> None:
        expected = {r.storage_data.relative_path for rank in results for r in rank}
        metadata_name = _METADATA if self.use_collectives or self.rank is None \
            else f"__{self.rank}{_METADATA}"
        # .metadata is written to a temporary name and renamed: digest it under its final name.
        tmp = str(self.fs.concat_path(self.path, f"{metadata_name}.tmp"))
        final = str(self.fs.concat_path(self.path, metadata_name))
        if tmp in self.fs.digests:
            self.fs.digests[final] = self.fs.digests.pop(tmp)
        self._report([metadata_name])
        runtime = _runtime.current()
        if runtime is not None:
            runtime.agent.plan_artifact(self._artifact(), sorted(expected | {metadata_name}),
                                        role=self._role)


def _read_digest(path: str, algorithm: str) -> tuple[str, int]:
    manifest = digest_path(path, algorithm=algorithm)
    return manifest.resources[0].digest, manifest.resources[0].size
