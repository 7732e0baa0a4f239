"""Fast, bounded-memory hashing of files, directories, buffers and tensors.

A directory (or a single file) becomes a :class:`Manifest` in the OpenSSF
Model Signing (OMS) v1.0 serialization, so the same model has the same
identity here and in ``model_signing``:

* method ``files``: one resource per file, named by its relative POSIX path;
* method ``shards``: one resource per byte range, named ``path:start:end``,
  so one huge file is hashed on every core;
* resources are ordered as ``model_signing`` orders them (path components,
  then start offset), and the root digest is SHA-256 over the concatenated
  raw resource digests, whatever algorithm hashed the files;
* ``.git/``, ``.github/``, ``.gitattributes`` and ``.gitignore`` at the top
  level are ignored by default, as OMS does.

Work is spread over a thread pool (hashlib and blake3 release the GIL); each
worker owns one fixed read buffer, so memory stays bounded whatever the size
of the input. A file that changes while it is hashed is an error, never a
digest.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "w.bin").write_bytes(b"abc")
>>> digest_path(d).resources[0].digest[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import mmap
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from slsa_dist.errors import InputError
from slsa_dist.model._digests import ALGORITHMS, Algorithm

if TYPE_CHECKING:
    from slsa_dist.digest._cache import DigestCache

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_SHARD_SIZE",
    "Algorithm",
    "Manifest",
    "Method",
    "Resource",
    "digest_bytes",
    "digest_path",
    "digest_tensor",
    "new_hasher",
    "path_order",
    "signed_ignore_paths",
]

Method = Literal["files", "shards"]

DEFAULT_SHARD_SIZE = 1_000_000_000  # OMS's default, in bytes
DEFAULT_IGNORE: tuple[str, ...] = (".git", ".github", ".gitattributes", ".gitignore")
_BUFFER = 1 << 20  # per-worker read buffer: the bound on memory per thread
_BLAKE3_PARALLEL_MIN = 16 << 20  # below this, blake3's own threads cost more than they give
_MMAP_WINDOW = 64 << 20  # mapped, hashed and unmapped at a time: bounds resident pages


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


def new_hasher(algorithm: str, *, parallel: bool = False) -> _Hasher:
    """A streaming hasher for ``algorithm`` (blake3 single-threaded unless ``parallel``)."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "sha512":
        return hashlib.sha512()
    if algorithm == "blake3":
        try:
            import blake3
        except ImportError:
            raise InputError(
                "algorithm blake3: expected the 'blake3' package, found it missing "
                "(pip install 'slsa-dist[blake3]')"
            ) from None
        hasher: _Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if parallel else 1)
        return hasher
    raise InputError(f"algorithm: expected one of {', '.join(ALGORITHMS)}, found {algorithm!r}")


def path_order(path: str) -> tuple[str, ...]:
    """Where a file sorts in a manifest: by path components (model_signing's order)."""
    parts: tuple[str, ...] = tuple(path.split("/"))
    if "" in parts or "." in parts:  # not plain "a/b": let pathlib normalize it
        parts = PurePosixPath(path).parts
    return parts


class _Key(NamedTuple):
    """Sort key matching model_signing: path components, then offsets (a tuple, so
    sorting 65,536 files compares in C)."""

    parts: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One manifest entry: a file, or a byte range ``[start, end)`` of one."""

    path: str
    digest: str
    algorithm: str
    start: int | None = None
    end: int | None = None
    size: int = 0

    @property
    def name(self) -> str:
        """The OMS resource name: the path, or ``path:start:end`` for a shard."""
        if self.start is None:
            return self.path
        return f"{self.path}:{self.start}:{self.end}"

    def sort_key(self) -> _Key:
        return _Key(path_order(self.path), self.start or 0, self.end or 0)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The digests of a model or dataset directory, OMS-compatible."""

    name: str
    algorithm: str
    method: Method
    resources: tuple[Resource, ...]
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = field(default=DEFAULT_IGNORE)

    @cached_property  # the manifest is frozen: one pass over its resources, however asked
    def root_digest(self) -> str:
        """SHA-256 over the raw resource digests in manifest order (OMS)."""
        root = hashlib.sha256()
        for resource in self.resources:
            root.update(bytes.fromhex(resource.digest))
        return root.hexdigest()

    @cached_property
    def names_digest(self) -> str:
        """SHA-256 over ``[[name, digest], ...]`` in manifest order, as JSON without white
        space (``json.dumps(pairs, separators=(",", ":"))``, non-ASCII as ``\\uXXXX``):
        what binds the file names, which the OMS root leaves out. A plain file's one
        name is ``.``, so no file stands for a folder."""
        pairs = [[resource.name, resource.digest] for resource in self.resources]
        return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()

    @property
    def identity(self) -> str:
        """The SHA-256 slsa-dist names this artifact by everywhere (subjects, inputs,
        the store): a plain file's own digest, anything else's manifest root."""
        if self.method == "files" and self.algorithm == "sha256" \
                and len(self.resources) == 1 and self.resources[0].path == ".":
            return self.resources[0].digest
        return self.root_digest

    @property
    def subject_digests(self) -> frozenset[str]:
        """Every SHA-256 a subject may name this artifact by: its identity, and its
        manifest root (which a provenance may carry for a single file too)."""
        return frozenset({self.identity, self.root_digest})

    @property
    def total_bytes(self) -> int:
        return sum(r.size for r in self.resources)

    @classmethod
    def from_oms(cls, *, name: str, serialization: Mapping[str, Any],
                 resources: Sequence[Mapping[str, Any]]) -> Manifest:
        """A manifest from an OMS ``serialization`` and ``resources`` list (as signed)."""
        method = serialization.get("method")
        if method not in ("files", "shards"):
            raise InputError(f"serialization.method: expected 'files' or 'shards', "
                             f"found {method!r}")
        shard_size = _oms_shard_size(serialization.get("shard_size"))
        parsed = []
        for index, item in enumerate(resources):
            if not isinstance(item, Mapping):
                raise InputError(f"resources[{index}]: expected an object")
            path, start, end = str(item.get("name", "")), None, None
            algorithm = str(item.get("algorithm", ""))
            # model_signing labels shard digests "<hash>-sharded-<shard size>"
            base, marker, size = algorithm.partition("-sharded-")
            if marker:
                if size != str(shard_size):
                    raise InputError(f"resources[{index}].algorithm: expected "
                                     f"'{base}-sharded-{shard_size}', found {algorithm!r}")
                algorithm = base
            if method == "shards":
                try:
                    path, first, last = path.rsplit(":", 2)
                    start, end = int(first), int(last)
                except ValueError:
                    raise InputError(f"resources[{index}].name: expected path:start:end, "
                                     f"found {item.get('name')!r}") from None
            parsed.append(Resource(path=path, digest=str(item.get("digest", "")),
                                   algorithm=algorithm, start=start, end=end))
        return cls(name=name, algorithm=str(serialization.get("hash_type", "sha256")),
                   method="shards" if method == "shards" else "files",
                   resources=tuple(sorted(parsed, key=Resource.sort_key)),
                   shard_size=shard_size,
                   allow_symlinks=bool(serialization.get("allow_symlinks", False)),
                   ignore_paths=signed_ignore_paths(serialization))

    def serialization(self) -> dict[str, Any]:
        """The OMS ``predicate.serialization`` object."""
        out: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.algorithm,
            "allow_symlinks": self.allow_symlinks,
            "ignore_paths": sorted(self.ignore_paths),
        }
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        return out

    def to_json(self) -> dict[str, Any]:
        """One JSON document: root digest, algorithm and every resource."""
        return {
            "name": self.name,
            "rootDigest": {"sha256": self.root_digest},
            "serialization": self.serialization(),
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.digest}
                for r in self.resources
            ],
        }

    def diff(self, other: Manifest) -> list[str]:
        """Human-readable differences from ``other`` (the expected manifest)."""
        mine = {r.name: r.digest for r in self.resources}
        theirs = {r.name: r.digest for r in other.resources}
        problems = [f"missing: {n}" for n in sorted(theirs.keys() - mine.keys())]
        problems += [f"unexpected: {n}" for n in sorted(mine.keys() - theirs.keys())]
        problems += [
            f"changed: {n}" for n in sorted(mine.keys() & theirs.keys()) if mine[n] != theirs[n]
        ]
        return problems

    def diff_summary(self, other: Manifest, *, shown: int = 10) -> str:
        """:meth:`diff` in one line: the first ``shown`` differences and a count of the
        rest; empty when the manifests agree."""
        problems = self.diff(other)
        more = len(problems) - shown
        return ", ".join(problems[:shown]) + (f" (+{more} more)" if more > 0 else "")


def signed_ignore_paths(serialization: Mapping[str, Any]) -> tuple[str, ...]:
    """The paths a signed OMS ``serialization`` left out, exactly as signed.

    A list is taken as it is: ``[]`` means nothing was ignored (a coordinator's
    checkpoint records sign that), never "the defaults". Only an absent key means the
    default of OMS v1.0 and of every slsa-dist record format, :data:`DEFAULT_IGNORE`.

    Raises:
        InputError: ``ignore_paths`` is present but not a list of strings.
    """
    if "ignore_paths" not in serialization:
        return DEFAULT_IGNORE
    value = serialization["ignore_paths"]
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise InputError(f"serialization.ignore_paths: expected a list of paths, found "
                         f"{value!r:.60}")
    return tuple(value)


def _oms_shard_size(value: Any) -> int | None:
    """``shard_size`` as signed: model_signing writes it through a protobuf Struct, so
    it arrives as a float (``100000.0``); an integral float is the integer it stands for."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"serialization.shard_size: expected a positive integer, found "
                         f"{value!r:.40}")
    return value


def digest_bytes(data: bytes | memoryview, algorithm: str = "sha256") -> str:
    """Hex digest of an in-memory buffer."""
    hasher = new_hasher(algorithm, parallel=len(data) >= _BLAKE3_PARALLEL_MIN)
    hasher.update(data)
    return hasher.hexdigest()


def digest_tensor(tensor: Any, algorithm: str = "sha256") -> str:
    """Hex digest of a tensor's bytes (moved to CPU, made contiguous).

    Covers the raw element bytes only; record dtype and shape next to it.
    """
    cpu = tensor.detach().to("cpu").contiguous()
    view = memoryview(cpu.view(-1).view(dtype=_uint8(cpu)).numpy())
    return digest_bytes(view, algorithm)


def _uint8(tensor: Any) -> Any:
    import torch

    del tensor
    return torch.uint8


def _hash_mapped(fd: int, start: int, end: int, hasher: _Hasher,
                 on_bytes: Callable[[int], None] | None) -> None:
    """Hash ``[start, end)`` straight from the page cache, a window at a time."""
    granule = mmap.ALLOCATIONGRANULARITY
    offset = start
    while offset < end:
        base = offset - offset % granule
        length = min(end, base + _MMAP_WINDOW) - base
        with mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=base) as window:
            window.madvise(mmap.MADV_SEQUENTIAL)
            with memoryview(window) as view:
                hasher.update(view[offset - base:])
        if on_bytes is not None:
            on_bytes(base + length - offset)
        offset = base + length


def _hash_range(path: Path, start: int, end: int, algorithm: str, *, parallel: bool,
                buffer: bytearray, on_bytes: Callable[[int], None] | None,
                use_mmap: bool = False) -> str:
    hasher = new_hasher(algorithm, parallel=parallel)
    view = memoryview(buffer)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        if use_mmap and end - start >= len(buffer):
            _hash_mapped(fd, start, end, hasher, on_bytes)
            return hasher.hexdigest()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_SEQUENTIAL)
        offset = start
        while offset < end:
            want = min(len(view), end - offset)
            got = os.preadv(fd, [view[:want]], offset)
            if got == 0:
                raise InputError(
                    f"{path}: expected {end - start} bytes from offset {start}, "
                    f"found the file ending at {offset} (it changed while hashed)"
                )
            hasher.update(view[:got])
            offset += got
            if on_bytes is not None:
                on_bytes(got)
    finally:
        os.close(fd)
    return hasher.hexdigest()


@dataclass(frozen=True)
class _Entry:
    path: Path
    relative: str
    stat: os.stat_result


def _walk(root: Path, *, allow_symlinks: bool, ignore: Sequence[str]) -> list[_Entry]:
    """Every regular file under ``root``; refuses what OMS refuses."""
    real_root = root.resolve()

    def check(path: Path, relative: str) -> os.stat_result | None:
        try:
            lst = path.lstat()
        except OSError as exc:
            raise InputError(f"{path}: cannot stat: {exc.strerror}") from None
        if stat.S_ISLNK(lst.st_mode):
            if not allow_symlinks:
                raise InputError(
                    f"{path}: expected a regular file or directory, found a symlink "
                    "(pass --allow-symlinks to follow links inside the root)"
                )
            target = path.resolve()
            if target != real_root and real_root not in target.parents:
                raise InputError(
                    f"{path}: symlink points to {target}, outside the root {real_root}; "
                    "links are never followed out of the root"
                )
            try:
                lst = target.stat()
            except OSError as exc:
                raise InputError(f"{path}: broken symlink: {exc.strerror}") from None
        if stat.S_ISDIR(lst.st_mode):
            return None
        if not stat.S_ISREG(lst.st_mode):
            kind = ("fifo" if stat.S_ISFIFO(lst.st_mode) else
                    "socket" if stat.S_ISSOCK(lst.st_mode) else "device or special file")
            raise InputError(f"{path}: expected a regular file or directory, found a {kind}")
        if relative and not os.access(path, os.R_OK):
            raise InputError(f"{path}: expected a readable file, found one without read access")
        return lst

    top = check(root, "")
    if top is not None:
        # A single file: OMS names its one resource "." (the path relative to itself).
        return [_Entry(root, ".", top)]
    entries: list[_Entry] = []
    ignored = set(ignore)

    def visit(directory: Path, prefix: str) -> None:
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{directory}: cannot list: {exc.strerror}") from None
        for child in children:
            relative = f"{prefix}{child.name}"
            if relative in ignored:
                continue
            path = Path(child.path)
            st = check(path, relative)
            if st is None:
                if path.is_symlink():
                    continue  # a linked directory would be walked twice; OMS skips it too
                visit(path, relative + "/")
            else:
                # An allowed link is read through its checked target, never re-resolved later.
                real = path.resolve() if path.is_symlink() else path
                entries.append(_Entry(real, relative, st))

    visit(root, "")
    return entries


def _same(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ino) == (
        after.st_size, after.st_mtime_ns, after.st_ino)


class _Progress:
    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._done = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        if self._callback is None:
            return
        with self._lock:
            self._done += count
            done = self._done
        self._callback(done, self._total)


def digest_path(
    path: str | os.PathLike[str],
    *,
    algorithm: str = "sha256",
    method: Method = "files",
    shard_size: int = DEFAULT_SHARD_SIZE,
    allow_symlinks: bool = False,
    ignore_paths: Iterable[str] = DEFAULT_IGNORE,
    max_workers: int | None = None,
    cache: DigestCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    use_mmap: bool = False,
) -> Manifest:
    """Hash a file or a directory into an OMS-compatible :class:`Manifest`.

    Args:
        path: a file or directory.
        algorithm: ``sha256`` (default), ``sha512`` or ``blake3``.
        method: ``files`` (one digest per file) or ``shards`` (byte ranges).
        shard_size: bytes per shard for ``shards``.
        allow_symlinks: follow symlinks that stay inside the root.
        ignore_paths: top-level relative paths to leave out.
        max_workers: threads; default one per core.
        cache: an optional :class:`DigestCache` of unchanged files.
        progress: called with (bytes done, bytes total) as work completes.
        use_mmap: hash files straight from the page cache through 64 MiB
            mapped windows instead of copying them into a read buffer (about
            10% faster here). Only for inputs nothing else modifies: a file
            truncated by another process while mapped kills this process
            with SIGBUS instead of raising an error. Off by default.

    Raises:
        InputError: a missing, unreadable, special or changing file, or a
            symlink that is refused.
    """
    root = Path(path)
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm: expected one of {', '.join(ALGORITHMS)}, "
                         f"found {algorithm!r}")
    if method not in ("files", "shards"):
        raise InputError(f"method: expected 'files' or 'shards', found {method!r}")
    if shard_size < 1:
        raise InputError(f"shard size: expected a positive number of bytes, found {shard_size}")
    if not root.exists() and not root.is_symlink():
        raise InputError(f"{root}: expected a file or directory, found nothing at that path")
    ignore = tuple(ignore_paths)
    entries = _walk(root, allow_symlinks=allow_symlinks, ignore=ignore)

    jobs: list[tuple[_Entry, int, int]] = []
    for entry in entries:
        size = entry.stat.st_size
        if method == "files":
            jobs.append((entry, 0, size))
        else:
            jobs.extend((entry, s, min(s + shard_size, size)) for s in range(0, size, shard_size))
    workers = max_workers or os.cpu_count() or 1
    # With few jobs, let blake3 use its own threads inside each file instead.
    parallel_inner = algorithm == "blake3" and len(jobs) < workers
    tracker = _Progress(progress, sum(end - start for _, start, end in jobs))
    local = threading.local()

    def run(job: tuple[_Entry, int, int]) -> Resource:
        entry, start, end = job
        is_shard = method == "shards"
        if cache is not None:
            hit = cache.get(entry.stat, algorithm, start, end)
            if hit is not None:
                tracker.add(end - start)
                return _resource(entry, hit, algorithm, start, end, is_shard=is_shard)
        buffer = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = bytearray(_BUFFER)
        digest = _hash_range(
            entry.path, start, end, algorithm,
            parallel=parallel_inner and end - start >= _BLAKE3_PARALLEL_MIN,
            buffer=buffer, on_bytes=tracker.add, use_mmap=use_mmap,
        )
        try:
            after = entry.path.stat()
        except OSError as exc:
            raise InputError(f"{entry.path}: vanished while hashed: {exc.strerror}") from None
        if not _same(entry.stat, after):
            raise InputError(
                f"{entry.path}: expected the file to stay unchanged while hashed, found "
                f"size {entry.stat.st_size}->{after.st_size}, "
                f"mtime_ns {entry.stat.st_mtime_ns}->{after.st_mtime_ns}; no digest recorded"
            )
        if cache is not None:
            cache.put(entry.stat, algorithm, start, end, digest)
        return _resource(entry, digest, algorithm, start, end, is_shard=is_shard)

    resources: list[Resource] | None = None
    if len(jobs) > 1 and workers > 1:
        try:
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(workers, len(jobs))) as pool:
                resources = list(pool.map(run, jobs))
        except RuntimeError as exc:
            # At interpreter exit (an atexit hook recording what a rank saved) no thread
            # pool takes work any more: hash in this thread instead.
            if "shutdown" not in str(exc):
                raise
    if resources is None:
        resources = [run(job) for job in jobs]
    if cache is not None:
        cache.commit()
    name = root.name or root.resolve().name
    return Manifest(
        name=name,
        algorithm=algorithm,
        method=method,
        resources=tuple(sorted(resources, key=Resource.sort_key)),
        shard_size=shard_size if method == "shards" else None,
        allow_symlinks=allow_symlinks,
        ignore_paths=ignore,
    )


def _resource(entry: _Entry, digest: str, algorithm: str, start: int, end: int, *,
              is_shard: bool) -> Resource:
    return Resource(
        path=entry.relative, digest=digest, algorithm=algorithm,
        start=start if is_shard else None, end=end if is_shard else None, size=end - start,
    )
