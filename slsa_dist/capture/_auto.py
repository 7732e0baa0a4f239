"""Zero-code capture: what an unchanged training script reads and what it saves.

``-m slsa_dist.exec`` and the opt-in bootstrap turn this on (:func:`install`)
after the rank's runtime starts. Nothing here blocks the training loop for
long: reads are digested on a background thread, saves are digested once, at
the end of the rank (or while written, for DCP).

* **Inputs.** Every regular file the process opens for reading through Python
  (``open()``, ``torch.load`` and ``np.load`` with a path, tokenizer and config
  files) is seen by an audit hook and recorded as a dependency of kind
  ``input`` by digest, once per file version. Left out: the interpreter's own
  library and site-packages, ``/proc``, ``/sys``, ``/dev``, ``/usr``,
  compiled code, the agent's spool, and the files this rank saves. Roots in
  ``SLSA_CAPTURE_EXCLUDE`` (``os.pathsep``-separated) are left out too; with
  ``SLSA_CAPTURE_INCLUDE`` only files under those roots are recorded. A file
  read from a model directory (a DCP checkpoint's ``.metadata``, a Hugging
  Face ``config.json`` or weight index beside it) makes the directory the
  input, by its manifest root: one dependency, not one per shard.
* **Data consumed.** Every ``DataLoader`` over a map-style dataset has its
  index sampler (``DistributedSampler``, a shuffling or sequential sampler,
  inside a batch sampler) wrapped as :class:`~slsa_dist.torch.RecordingSampler`
  wraps it: per rank and epoch, the count and a digest of the indices the
  loop was handed (DataLoader workers draw batches ahead; a batch counts only
  once the iterator hands it to the loop: a loop that breaks early consumed what
  it got, not what was prefetched), and the sampler's parameters. Without shard
  files to map indices to, they are counted against a pseudo-shard named ``index:<Dataset>``
  (``slsa-dist:index/...``) that identifies the dataset's index space, not
  its bytes (which the inputs above name); the merge does not list it as a
  dependency.
* **Outputs.** ``torch.save`` to a path and safetensors' ``save_file`` are
  recorded as checkpoint artifacts with the digest of the file's last
  content, in the order last saved; as everywhere in slsa-dist, with no final
  artifact named the last one written is the job's subject. ``dcp.save``
  without a storage writer gets :class:`~slsa_dist.torch.DigestingFileSystemWriter`,
  which hashes each file on the rank that writes it, as it is written.

Files read through native code that bypasses Python (safetensors' loader,
memory-mapped readers opened in C) are not seen; use
:func:`slsa_dist.record_input` for those.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import importlib.abc
import importlib.machinery
import io
import logging
import os
import queue
import site
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from slsa_dist.capture import _samplers
from slsa_dist.capture._outputs import classify, named_subjects
from slsa_dist.capture._runtime import Runtime, capture_gap, own_reads, reading_own
from slsa_dist.digest._manifest import digest_path
from slsa_dist.errors import InputError
from slsa_dist.model._records import INDEX_URI

__all__ = ["Capture", "install", "local_code", "patch_iterator", "watch_early",
           "wrap_loader"]

log = logging.getLogger(__name__)

_SYSTEM_ROOTS = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc",
                 "/run", "/var/lib/dpkg")
_CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pth")
# Package metadata and caches the interpreter reads for itself (entry points, bytecode).
_METADATA_PARTS = ("__pycache__", ".dist-info/", ".egg-info/")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FileVersion = tuple[int, int, int, int, int]  # dev, inode, size, mtime, ctime


def _roots(variable: str) -> tuple[str, ...]:
    return tuple(os.path.abspath(p) for p in os.environ.get(variable, "").split(os.pathsep)
                 if p)


def local_code(script: str | None, *, excluded: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(path, sha256) of ``script`` and of every module imported so far from its
    directory or git work tree (not slsa-dist's own, not site-packages)."""
    if not script:
        return []
    roots = {os.path.dirname(os.path.abspath(script))}
    top = _git_top(next(iter(roots)))
    if top:
        roots.add(top)
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    skip = (*excluded, own, *(p for p in site.getsitepackages()))
    found: dict[str, str] = {}
    files = [script, *(getattr(m, "__file__", None) for m in list(sys.modules.values()))]
    for name in files:
        if not name or not name.endswith(".py"):
            continue
        path = os.path.abspath(name)
        if path in found or not _under(path, tuple(roots)) or _under(path, skip) \
                or not os.path.isfile(path):  # some modules name files that do not exist
            continue
        try:
            with own_reads():
                found[path] = digest_path(path).identity
        except (OSError, InputError):
            continue
    return sorted(found.items())


def _git_top(folder: str) -> str | None:
    """The work tree holding ``folder``, found by walking up to a ``.git`` entry."""
    current = folder
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


class Capture:
    """One rank's zero-code capture: an audit hook for reads, patches for saves."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        spool = getattr(runtime.agent, "_spool_dir", None)
        library = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
                   site.getusersitepackages(), os.path.dirname(os.__file__),
                   os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
        self._excluded = (*_SYSTEM_ROOTS, *(os.path.abspath(p) for p in library if p),
                          *((os.path.abspath(spool),) if spool else ()),
                          *_roots("SLSA_CAPTURE_EXCLUDE"))
        self._included = _roots("SLSA_CAPTURE_INCLUDE")
        self._seen: set[str] = set()  # names already seen opened in this process
        self._queued: set[str] = set()  # files and model directories already queued
        self._digested: dict[_FileVersion, str] = {}
        self._saved: dict[str, float] = {}  # path -> when last saved
        # What this process wrote (opened for writing, or saved), and those files'
        # folders: read back later they are its own outputs, never its inputs.
        self._written: set[str] = set()
        self._written_dirs: set[str] = set()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._digesting: str | None = None  # the input the thread digests now
        self._abandoned = False  # the rank stopped waiting: the thread records nothing more
        self.inputs = 0
        self.script: str | None = None  # the entry script, for the code it imported

    # -- inputs -----------------------------------------------------------------------

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """``sys.addaudithook`` callback; cheap for every event but ``open``. Never raises
        (an exception here would fail the user's ``open``): what it cannot follow is a
        capture gap."""
        if event != "open":
            return
        try:
            self._audit_open(args)
        except Exception as exc:  # the user's open must go on regardless
            capture_gap(f"file read {_describe_path(args[0] if args else None)}", exc)

    def _audit_open(self, args: tuple[Any, ...]) -> None:
        if self.runtime.finished:
            return
        path, mode, flags = args
        if isinstance(path, int) or reading_own():
            return
        name = os.fsdecode(path) if isinstance(path, bytes) else str(path)
        if (any(c in mode for c in "wax+") if isinstance(mode, str)
                else isinstance(flags, int) and bool(flags & _WRITE_FLAGS)):
            self._wrote(name)
            return
        if name in self._seen:
            return
        self._seen.add(name)
        self._read(name)

    def _read(self, name: str) -> None:
        path = os.path.abspath(name)
        if path.endswith(_CODE_SUFFIXES) or any(part in path for part in _METADATA_PARTS):
            return
        if _under(path, self._excluded) or (self._included and not _under(path, self._included)):
            return
        if not os.path.exists(path):  # the event comes before the open: this one fails
            return  # (a path hook's pseudo-entry, a probe for an optional file)
        if os.path.isdir(path):  # opened to list or remove it (shutil.rmtree, os.fwalk):
            return  # no content read; a folder it may vanish with before it is digested
        path = _model_directory(path) or path
        if self._own_output(path):
            return  # written by this process (then read back): an output, not an input
        if path in self._queued:
            return
        self._queued.add(path)
        if os.getpid() != self._pid:  # a forked DataLoader worker: its own digest thread
            self._pid, self._thread, self._queue = os.getpid(), None, queue.Queue()
        if self._thread is None:
            self._thread = threading.Thread(target=self._digest_inputs, daemon=True,
                                            name="slsa-capture-inputs")
            self._thread.start()
        self._queue.put(path)

    def _own_output(self, path: str) -> bool:
        """This process wrote ``path`` (saved it, opened it for writing, or recorded it
        as an artifact) or wrote into it (a model folder): reading it back is no input."""
        if path in self._saved or path in self._written or path in self._written_dirs:
            return True
        recorded = tuple(getattr(self.runtime, "recorded_roots", ()))
        return bool(recorded) and _under(path, recorded)

    def _digest_inputs(self) -> None:
        while True:
            with self._lock:
                if self._abandoned:
                    return
            path = self._queue.get()
            if path is None:
                return
            with self._lock:
                self._digesting = path
            try:
                self._digest_input(path)
            except Exception as exc:  # gone or unreadable since: a gap
                with self._lock:
                    abandoned = self._abandoned
                if not abandoned:  # else finish reported it as not digested in time
                    capture_gap(f"input {path}", exc)
            finally:
                with self._lock:
                    self._digesting = None

    def _digest_input(self, path: str) -> None:
        st = os.stat(path)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) \
                or self._own_output(path):  # written since it was queued
            return
        version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if version in self._digested:
            return
        with own_reads():
            digest = self._digested[version] = digest_path(path, ignore_paths=()).identity
        with self._lock:  # recorded, or listed as a gap by finish: never both, never neither
            if self._abandoned:
                return
            self.inputs += 1
            self.runtime.agent.record_dependency(
                "input", name=self.runtime.artifact_name(path), uri=Path(path).as_uri(),
                digest={"sha256": digest},
                # when its bytes were last written: the merge tells a file this job wrote
                # (on any rank) and read back from one that was there before it began
                annotations={"slsadist_captured": "read",
                             "slsadist_modified": _utc(st.st_mtime_ns)})

    # -- outputs ----------------------------------------------------------------------

    def saved(self, path: Any, *, by: str = "save") -> None:
        """A file this rank saved (``torch.save``, ``save_file``); digested at the end.

        A path, or a file object opened on one, is followed; an in-memory buffer
        (``BytesIO``) is no file and left out; any other target is a capture gap."""
        if isinstance(path, (str, bytes, os.PathLike)):
            name = os.fsdecode(os.fspath(path))
        elif isinstance(path, (io.BytesIO, bytearray, memoryview)) \
                or (_in_dcp() and hasattr(path, "write")):
            return  # in memory, or a stream of a DCP file the digesting writer records
        elif isinstance(getattr(path, "name", None), (str, bytes)) \
                and os.path.isfile(os.fsdecode(path.name)):
            name = os.fsdecode(path.name)  # a file object opened on a path
        else:
            capture_gap(f"output written by {by} to a {type(path).__qualname__}",
                        "not a path or a file opened on one: its content is not recorded")
            return
        with self._lock:
            self._saved[os.path.abspath(name)] = time.monotonic()
        self._wrote(name)

    def _wrote(self, name: str) -> None:
        path = os.path.abspath(name)
        self._written.add(path)
        self._written_dirs.add(os.path.dirname(path))

    def record_code(self, script: str | None) -> None:
        """Every module the run imported from the script's directory (or its git work
        tree), and the script, by digest: helper code beside the script too."""
        for path, digest in local_code(script, excluded=self._excluded):
            self.runtime.agent.record_dependency(
                "code", name=self.runtime.artifact_name(path), uri=Path(path).as_uri(),
                digest={"sha256": digest}, annotations={"slsadist_captured": "imported"})

    def finish(self, timeout: float | None = None) -> None:
        """Drain the inputs still queued or being digested (at most ``timeout`` seconds,
        ``SLSA_CAPTURE_DRAIN_TIMEOUT``, default 300), then report imported code and every
        saved file.

        Never raises: provenance must not fail the training run it describes; what
        could not be recorded (an input not digested in time, a file that could not be
        read) is reported as a capture gap, which makes the provenance incomplete.
        """
        try:
            wait = timeout if timeout is not None else float(
                os.environ.get("SLSA_CAPTURE_DRAIN_TIMEOUT", "300"))
        except ValueError:
            wait = 300.0
        for step in (self._close_passes, self._drain, self._record_code, self._record_saved):
            try:
                step(wait)
            except Exception as exc:  # each step on its own; say what failed
                capture_gap(f"zero-code capture at the end of the rank ({step.__name__})", exc)

    def _close_passes(self, timeout: float) -> None:
        del timeout
        close_passes()

    def _drain(self, timeout: float) -> None:
        """Wait for the digest thread; list what it did not get to as capture gaps."""
        if self._thread is None or os.getpid() != self._pid:
            return
        self._queue.put(None)
        self._thread.join(max(0.0, timeout))
        with self._lock:
            self._abandoned = True  # from here the thread records nothing
            left = [self._digesting] if self._digesting else []
            self._digesting = None
        while True:
            try:
                path = self._queue.get_nowait()
            except queue.Empty:
                break
            if path is not None:
                left.append(path)
        for path in left:
            capture_gap(f"input {path}", f"still being digested when the rank ended; "
                        f"not digested within {timeout:g} s (SLSA_CAPTURE_DRAIN_TIMEOUT)")

    def _record_code(self, timeout: float) -> None:
        del timeout
        main = sys.modules.get("__main__")
        self.record_code(self.script or getattr(main, "__file__", None))

    def _record_saved(self, timeout: float) -> None:
        """Every saved file, by what it is (``_outputs``): a model folder digested whole,
        auxiliary files never the subject, the rest checkpoints; what ``SLSA_SUBJECT``
        names is the final model and nothing else is."""
        del timeout
        with self._lock:
            saved = sorted(self._saved, key=self._saved.__getitem__)
        named = named_subjects()
        recorded = tuple(self.runtime.recorded_roots)
        folders: dict[str, str] = {}  # a model or checkpoint folder, once, in save order
        for path in saved:
            if _under(path, recorded) or _under(path, named):
                continue  # part of an artifact recorded whole (or named as the subject)
            if not os.path.isfile(path):  # rotated away (an old checkpoint): no output
                log.warning("slsa-dist: saved file %s is gone; not recorded", path)
                continue
            kind = classify(path)
            if kind in ("model", "checkpoint-folder"):
                role = "final" if kind == "model" and not named else "checkpoint"
                folders.setdefault(os.path.dirname(path), role)
                continue
            self._record_file(path, "auxiliary" if kind == "auxiliary" else "checkpoint")
        for folder, role in folders.items():
            if _under(folder, named):
                continue
            self._record_folder(folder, role)
        for path in named:
            if not os.path.exists(path):
                capture_gap(f"subject {path} (SLSA_SUBJECT)", "no such file or folder when "
                            "the rank ended")
                continue
            if not self._wrote_into(path):
                # A subject is an output: naming what the job only read (its base model)
                # would sign the input as the job's product.
                capture_gap(f"subject {path} (SLSA_SUBJECT)", "this rank never wrote it: "
                            "a subject must be something the job produced")
                continue
            self._record_folder(path, "final")

    def _wrote_into(self, path: str) -> bool:
        """This process wrote ``path``, or (a folder) a file under it."""
        if self._own_output(path):
            return True
        with self._lock:
            saved = tuple(self._saved)
        return any(_under(w, (path,)) for w in (*self._written, *saved))

    def _record_file(self, path: str, role: str) -> None:
        try:
            with own_reads():
                manifest = digest_path(path)
            (resource,) = manifest.resources
            self.runtime.agent.record_file(self.runtime.artifact_name(path), resource.path,
                                           {"sha256": resource.digest},
                                           size=resource.size, role=role)
        except Exception as exc:  # one file; the others still count
            capture_gap(f"output {path}", exc)

    def _record_folder(self, path: str, role: str) -> None:
        """A folder (or a file) recorded whole, by its manifest, as one artifact."""
        try:
            with own_reads():
                manifest = digest_path(path, ignore_paths=())
            artifact = self.runtime.artifact_name(path)
            for resource in manifest.resources:
                self.runtime.agent.record_file(artifact, resource.path,
                                               {resource.algorithm: resource.digest},
                                               size=resource.size, role=role)
        except Exception as exc:  # one artifact; the others still count
            capture_gap(f"output {path}", exc)

    @property
    def outputs(self) -> int:
        return len(self._saved)


def _utc(nanoseconds: int) -> str:
    """A file time as RFC 3339 UTC with microseconds."""
    when = datetime.datetime.fromtimestamp(nanoseconds / 1e9, tz=datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Files that make a directory one model: read from it, the directory is the input,
# named by its manifest root as every multi-file artifact is (a DCP checkpoint, a
# Hugging Face model folder), not thousands of single files.
_MODEL_MARKERS = (".metadata", "model.safetensors.index.json", "pytorch_model.bin.index.json",
                  "config.json")


def _model_directory(path: str) -> str | None:
    folder = os.path.dirname(path)
    return folder if any(os.path.isfile(os.path.join(folder, m)) for m in _MODEL_MARKERS) \
        else None


def _wrap_save(original: Callable[..., Any], capture: Capture | None, position: int,
               keyword: str) -> Callable[..., Any]:
    """``original`` reporting what it saved to ``capture``, or (None) to the capture
    installed when it is called: a process patches once, and may host several ranks'
    lifetimes one after another (a Ray worker), each with its own capture."""
    where = f"{getattr(original, '__module__', '')}.{getattr(original, '__qualname__', '')}"

    @functools.wraps(original)
    def save(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)  # the user's call, exactly: its errors are its own
        target = capture or _INSTALLED
        if target is None:
            return result
        try:
            target.saved(args[position] if len(args) > position else kwargs.get(keyword),
                         by=where)
        except Exception as exc:  # the save happened; only capture missed it
            capture_gap(f"output written by {where}", exc)
        return result

    save.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    return save


def _patch_torch() -> None:
    try:
        import torch
    except ImportError:
        return
    if not hasattr(torch.save, "__slsa_dist_original__"):
        torch.save = _wrap_save(torch.save, None, 1, "f")
    # DCP costs a second to import: patch it when (and only if) the script imports it
    _after_import("torch.distributed.checkpoint.state_dict_saver", _patch_dcp)


# dcp.save calls in progress in this process (its writer may torch.save from threads of
# its own): streams saved into meanwhile are its files, which the writer records.
_DCP_SAVING = [0]
_DCP_LOCK = threading.Lock()


def _in_dcp() -> bool:
    return _DCP_SAVING[0] > 0


def _patch_dcp(state_dict_saver: Any) -> None:
    """``dcp.save`` with the default writer for a path gets the digesting writer, which
    hashes each file on the rank that writes it, as it is written. (The package's own
    ``dcp.save`` is taken from this module after it ran, so it is the patched one.)"""
    original = state_dict_saver.save
    if hasattr(original, "__slsa_dist_original__"):
        return

    @functools.wraps(original)
    def dcp_save(state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        checkpoint_id = kwargs.get("checkpoint_id")
        try:
            from slsa_dist.capture._dcp import DigestingFileSystemWriter

            writer = kwargs.get("storage_writer")
            if writer is None and checkpoint_id is not None \
                    and not args:  # keyword-only: anything positional is the user's to fail
                kwargs = {**kwargs, "storage_writer": DigestingFileSystemWriter(checkpoint_id)}
            elif writer is not None and not isinstance(writer, DigestingFileSystemWriter):
                capture_gap(f"DCP checkpoint {checkpoint_id or getattr(writer, 'path', '')!r}",
                            f"written by the script's own {type(writer).__qualname__}: its "
                            "files are not digested (use DigestingFileSystemWriter)")
        except Exception as exc:  # save as the user asked, unrecorded
            capture_gap(f"DCP checkpoint {checkpoint_id!r}", exc)
        # DCP serializes each item with torch.save into a stream of its writer's file, on
        # this thread or the writer's own: the writer records the files, so those saves
        # are not outputs of their own (nor gaps).
        with _DCP_LOCK:
            _DCP_SAVING[0] += 1
        try:
            return original(state_dict, *args, **kwargs)
        finally:
            with _DCP_LOCK:
                _DCP_SAVING[0] -= 1

    dcp_save.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    state_dict_saver.save = dcp_save
    package = sys.modules.get("torch.distributed.checkpoint")
    if package is not None and getattr(package, "save", None) is original:
        package.save = dcp_save  # type: ignore[attr-defined]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback(module)`` once ``name`` has been imported (and executed)."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module = functools.partial(  # type: ignore[method-assign]
                    _exec_then, spec.loader.exec_module, self.callback)
                return spec
        return None


def _exec_then(run: Callable[[ModuleType], None], callback: Callable[[ModuleType], None],
               module: ModuleType) -> None:
    run(module)
    callback(module)


def _after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, callback))


def _index_identity(dataset: Any, depth: int = 0) -> str:
    """What tells one index space from another, the same on every rank: the dataset's
    class and length and, for a ``Subset``, the digest of its indices and what it
    selects from (a seeded split gives every rank the same; val and test splits of
    one length stay two), for a ``ConcatDataset`` its parts."""
    import array
    import hashlib

    kind = f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    try:
        length = len(dataset)
    except Exception:  # no length (or one that fails): the class names it
        length = -1
    parts = [kind, str(length)]
    if depth < 8:
        indices = getattr(dataset, "indices", None)
        inner = getattr(dataset, "dataset", None)
        if indices is not None and inner is not None:  # torch.utils.data.Subset's shape
            try:  # as 64-bit integers, in C: a split of millions costs a blink
                listed = array.array("q", (int(i) for i in indices) if not isinstance(
                    indices, list) else indices).tobytes()
            except Exception:  # indices we cannot read: the rest names it
                listed = b"?"
            parts += [hashlib.sha256(listed).hexdigest(), _index_identity(inner, depth + 1)]
        for child in getattr(dataset, "datasets", None) or ():  # ConcatDataset's
            parts.append(_index_identity(child, depth + 1))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _index_shard(dataset: Any) -> Any:
    """The pseudo-shard zero-code capture reports a sampler's indices against: it names
    the dataset's index space (``slsa-dist:index/<module.Class>``, by
    :func:`_index_identity`), not its bytes; the data's content is named by the inputs
    the process read."""
    from slsa_dist.capture._samplers import Shard

    kind = f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    try:
        identity = _index_identity(dataset)
    except Exception:  # never break the loader: the class alone names it
        import hashlib

        identity = hashlib.sha256(kind.encode()).hexdigest()
    return Shard(name=f"index:{type(dataset).__name__}", digest={"sha256": identity}, start=0,
                 stop=2**62, uri=f"{INDEX_URI}{kind}")


def _patch_dataloader() -> None:
    """Every DataLoader made from now on is recorded (:func:`wrap_loader`); what it
    records is taken where the loader draws its indices, inside torch's own iterator."""
    try:
        from torch.utils.data import DataLoader
    except ImportError:
        return
    patch_iterator()
    original = DataLoader.__init__
    if hasattr(original, "__slsa_dist_original__"):
        return

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)  # the user's call: its errors are its own
        wrap_loader(self)  # never raises

    init.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    DataLoader.__init__ = init  # type: ignore[method-assign]


def patch_iterator() -> bool:
    """Follow the index stream of DataLoader iterators (once per process): for tracked
    loaders and those over a :class:`~slsa_dist.torch.RecordingSampler`, an item counts
    once the iterator hands it to the loop. True when the iterator is followed."""
    try:
        from torch.utils.data import dataloader as _dataloader
    except ImportError:
        return False
    base = getattr(_dataloader, "_BaseDataLoaderIter", None)
    global _ITERATOR_PATCHED  # noqa: PLW0603 -- the iterator class is patched once
    if base is not None and callable(getattr(base, "_reset", None)) \
            and not hasattr(base.__init__, "__slsa_dist_original__"):
        base.__init__ = _follow_indices(base.__init__)
        base._reset = _follow_indices(base._reset)  # noqa: SLF001 -- torch's re-iteration
        if callable(getattr(base, "__next__", None)):
            base.__next__ = _count_yielded(base.__next__)
        _ITERATOR_PATCHED = True
    elif base is not None and hasattr(base.__init__, "__slsa_dist_original__"):
        _ITERATOR_PATCHED = True
    return _ITERATOR_PATCHED


_ITERATOR_PATCHED = False
_samplers.LOADER_HOOKS.append(patch_iterator)  # every RecordingSampler made from now on


def _follow_indices(original: Callable[..., None]) -> Callable[..., None]:
    """Wraps ``_BaseDataLoaderIter.__init__``/``_reset``: after torch made the iterator's
    index stream (``iter(loader._index_sampler)``), a tracked loader's stream is replaced
    by one that hands out the very same items and counts the indices in them."""

    @functools.wraps(original)
    def follow(self: Any, loader: Any, *args: Any, **kwargs: Any) -> None:
        original(self, loader, *args, **kwargs)
        try:
            tracked = _TRACKED.get(loader)
            source = self.__dict__.get("_sampler_iter")
            if source is None or isinstance(source, (_IndexStream, _HandOff)):
                return
            # Counted when the iterator hands an item to the loop (its __next__ is
            # ours), not when drawn: workers draw prefetch_factor batches ahead.
            deferred = hasattr(type(self).__next__, "__slsa_dist_original__")
            unordered = bool(_attribute(self, "_num_workers")) \
                and _attribute(self, "_in_order") is False
            if tracked is not None:
                self._sampler_iter = _IndexStream(source, tracked, deferred=deferred,
                                                  unordered=unordered)
            elif deferred:
                recording = _recording_sampler(loader)
                if recording is not None:
                    self._sampler_iter = _HandOff(source, recording, unordered=unordered)
        except Exception as exc:  # iterate unrecorded
            capture_gap(f"data consumed from {_loader_name(loader)}", exc)

    follow.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    return follow


def _count_yielded(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps ``_BaseDataLoaderIter.__next__``: an item it returns was handed to the loop
    (counted); one that raised was not (dropped); the end of the pass closes its record.
    What reaches the loop is the iterator's own result or exception, unchanged."""

    @functools.wraps(original)
    def next_item(self: Any) -> Any:
        try:
            item = original(self)
        except StopIteration:
            _settle(self, "end")
            raise
        except BaseException:
            _settle(self, "drop")
            raise
        _settle(self, "yield")
        return item

    next_item.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    return next_item


def _settle(iterator: Any, what: str) -> None:
    """Tell the iterator's index stream (if it is one of ours) what became of an item."""
    try:
        stream = iterator.__dict__.get("_sampler_iter")
        if isinstance(stream, (_IndexStream, _HandOff)):
            if what == "yield":
                stream.handed_out()
            elif what == "drop":
                stream.dropped()
            else:
                stream.ended()
    except Exception as exc:  # the loop has its item (or its exception) regardless
        capture_gap("data consumed from a DataLoader", exc)


class _Tracked:
    """A DataLoader zero-code capture records: what it reports its indices against."""

    __slots__ = ("loader", "name", "params", "passes", "shard")

    def __init__(self, loader: Any, shard: Any) -> None:
        self.loader = weakref.ref(loader)
        self.name = _loader_name(loader)
        self.shard = shard
        self.params: dict[str, Any] | None = None
        self.passes = 0

    def parameters(self) -> dict[str, Any]:
        """The index sampler's parameters (seed, replicas, rank, shuffle), found through
        batch samplers that wrap others (accelerate's ``BatchSamplerShard``); once."""
        if self.params is None:
            loader = self.loader()
            self.params = _index_parameters(loader) if loader is not None else {}
        return self.params

    def epoch(self) -> int:
        """The epoch the sampler says (``set_epoch``), else this loader's pass count."""
        loader = self.loader()
        sampler = _innermost_sampler(loader) if loader is not None else None
        value = _attribute(sampler, "epoch")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        return self.passes


class _IndexStream:
    """The index stream of one pass over a tracked DataLoader: each item (a batch of
    indices, or one index) is handed on unchanged, its indices tallied a chunk at a
    time; the pass is reported when it ends or is abandoned. Anything it cannot count
    is a capture gap, and the items still flow.

    ``deferred`` (the iterator's ``__next__`` is patched): an item drawn is counted only
    once the iterator hands its batch to the loop. DataLoader workers draw
    ``prefetch_factor`` batches each ahead of the loop; a loop that stops early (a
    ``break``, ``max_steps``, an exception) consumed only what it was handed. Drawn
    items wait in order: an in-order loader hands out batches in the order drawn, and a
    batch whose fetch raised is the oldest one waiting. An out-of-order loader
    (``in_order=False``) left early is a capture gap: which of its prefetched batches
    reached the loop is not known."""

    __slots__ = ("__weakref__", "_broken", "_count", "_deferred", "_done", "_drawn", "_epoch",
                 "_hasher", "_pending", "_source", "_tracked", "_unordered", "_unsure")

    def __init__(self, source: Any, tracked: _Tracked, *, deferred: bool = False,
                 unordered: bool = False) -> None:
        import hashlib

        self._source = source
        self._tracked = tracked
        self._pending: list[int] = []
        self._drawn: collections.deque[list[int]] = collections.deque()
        self._count = 0
        self._hasher = hashlib.sha256()
        self._done = False
        self._broken = False
        self._deferred = deferred
        self._unordered = unordered
        self._unsure = False  # out of order, a batch raised: which one is not known
        self._epoch = tracked.epoch()
        _PASSES.add(self)

    def __iter__(self) -> _IndexStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._source)
        except StopIteration:
            if not self._deferred:  # else the iterator's own end closes the pass
                self._close()
            raise
        if not self._broken:
            try:
                indices = _indices(item)
                if self._deferred:
                    if len(self._drawn) >= _MAX_AHEAD:
                        raise InputError(f"expected the loop to take the batches drawn, "
                                         f"found {len(self._drawn)} drawn and not handed out")
                    self._drawn.append(indices)
                else:
                    self._take(indices)
            except Exception as exc:  # hand the item on, uncounted
                self._broken = True
                self._drawn.clear()
                capture_gap(f"data consumed from {self._tracked.name}", exc)
        return item

    def handed_out(self) -> None:
        """The iterator handed the loop its oldest drawn item."""
        if self._deferred and self._drawn and not self._broken:
            self._take(self._drawn.popleft())

    def dropped(self) -> None:
        """Fetching the oldest drawn item raised: the loop got an exception, not it."""
        if self._deferred and self._drawn:
            self._drawn.popleft()
            self._unsure = self._unsure or self._unordered

    def ended(self) -> None:
        self._close()

    def _take(self, indices: list[int]) -> None:
        self._pending.extend(indices)
        if len(self._pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            import numpy as np

            self._hasher.update(np.asarray(self._pending, dtype="<i8").tobytes())
            self._count += len(self._pending)
            self._pending = []

    def _close(self) -> None:
        if self._done:
            return
        self._done = True
        _PASSES.discard(self)
        try:
            if self._broken:
                return
            if self._unordered and (self._unsure or self._drawn):
                self._drawn.clear()
                capture_gap(f"data consumed from {self._tracked.name}",
                            "an out-of-order loader (in_order=False) stopped before its "
                            "prefetched batches were all handed out: which of them the "
                            "loop consumed is not known")
                return
            self._drawn.clear()  # prefetched, never handed to the loop: not consumed
            self._flush()
            if not self._count:
                return
            tracked = self._tracked
            epoch = self._epoch
            tracked.passes += 1
            runtime = _current_runtime()
            if runtime is None or runtime.completed:
                return
            shard = tracked.shard
            runtime.agent.record_shard(shard.name, shard.digest, uri=shard.uri,
                                       samples=self._count,
                                       index_digest=self._hasher.hexdigest(), epoch=epoch,
                                       sampler=tracked.parameters())
        except Exception as exc:  # the pass ran; only its record is lost
            capture_gap(f"data consumed from {self._tracked.name}", exc)

    def __del__(self) -> None:  # a pass the loop left early (max_steps, break)
        with contextlib.suppress(Exception):  # at interpreter exit nothing is left to say
            self._close()


class _HandOff:
    """The index stream of one pass over a DataLoader whose sampler is a
    :class:`~slsa_dist.torch.RecordingSampler`: the sampler records, this says which of
    the indices it yielded reached the loop. The indices the sampler yields while one
    item is drawn are that item's; they are tallied (by the sampler's own rule) once
    the iterator hands the item to the loop, and the pass is reported when it ends or
    is abandoned: prefetched batches the loop never got are not consumed."""

    __slots__ = ("__weakref__", "_broken", "_chunk", "_done", "_drawn", "_fresh",
                 "_recording", "_source", "_tallies", "_unordered", "_unsure")

    def __init__(self, source: Any, recording: Any, *, unordered: bool = False) -> None:
        self._source = source
        self._recording = recording
        self._fresh: list[Any] = []
        self._drawn: collections.deque[list[Any]] = collections.deque()
        self._chunk: list[Any] = []
        self._tallies: dict[str, Any] = {}
        self._broken = False
        self._done = False
        self._unordered = unordered
        self._unsure = False
        recording._handoff = self  # noqa: SLF001 -- the pass about to start draws here
        _PASSES.add(self)

    def __iter__(self) -> _HandOff:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._source)
        except BaseException:
            self._fresh = []  # drawn for no item (drop_last's remainder, a failure)
            raise
        group, self._fresh = self._fresh, []
        if not self._broken:
            if len(self._drawn) >= _MAX_AHEAD:
                self._broken = True
                self._drawn.clear()
                capture_gap(f"data consumed through {self._sampler_name()}",
                            f"expected the loop to take the batches drawn, found "
                            f"{_MAX_AHEAD} drawn and not handed out")
            else:
                self._drawn.append(group)
        return item

    def drawn(self, index: Any) -> None:
        """The sampler yielded ``index`` (called from its own generator)."""
        self._fresh.append(index)

    def handed_out(self) -> None:
        if self._drawn and not self._broken:
            self._chunk.extend(self._drawn.popleft())
            if len(self._chunk) >= _CHUNK:
                chunk, self._chunk = self._chunk, []
                self._broken = not self._recording._safely(  # noqa: SLF001 -- its own rule
                    self._recording._tally, self._tallies, chunk)  # noqa: SLF001

    def dropped(self) -> None:
        if self._drawn:
            self._drawn.popleft()
            self._unsure = self._unsure or self._unordered

    def ended(self) -> None:
        self._close()

    def _sampler_name(self) -> str:
        try:
            return type(self._recording.sampler).__qualname__
        except Exception:
            return "a RecordingSampler"

    def _close(self) -> None:
        if self._done:
            return
        self._done = True
        _PASSES.discard(self)
        if self._recording.__dict__.get("_handoff") is self:
            self._recording._handoff = None  # noqa: SLF001 -- never started: not ours
        if self._broken:
            return
        if self._unordered and (self._unsure or self._drawn):
            capture_gap(f"data consumed through {self._sampler_name()}",
                        "an out-of-order loader (in_order=False) stopped before its "
                        "prefetched batches were all handed out: which of them the loop "
                        "consumed is not known")
            return
        recording = self._recording
        if self._chunk and not recording._safely(recording._tally, self._tallies,  # noqa: SLF001
                                                 self._chunk):
            return
        self._chunk = []
        recording._safely(recording._report, self._tallies)  # noqa: SLF001

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close()


def _recording_sampler(loader: Any) -> Any:
    """The :class:`~slsa_dist.torch.RecordingSampler` the loader draws its indices from
    (as its sampler, or inside its batch sampler), if any."""
    for candidate in (_attribute(loader, "sampler"),
                      *(_attribute(b, "sampler") for b in _batch_samplers(loader))):
        if isinstance(candidate, _samplers.RecordingSampler):
            return candidate
    return None


def _indices(item: Any) -> list[int]:
    """The indices in one item of an index stream: an int, a list of them, a tensor."""
    if isinstance(item, int) and not isinstance(item, bool):
        return [item]
    if isinstance(item, (list, tuple, range)):
        return [_index(i) for i in item]
    # a tensor or array of indices: counted without being consumed
    shape = getattr(item, "shape", None)
    if shape is None or not hasattr(item, "tolist"):
        raise InputError(f"expected indices (an int or a list of them), found a "
                         f"{type(item).__qualname__}")
    values = item.tolist()
    return [_index(i) for i in (values if isinstance(values, list) else [values])]


_MAX_AHEAD = 1 << 16  # items drawn and not handed out: more is no prefetch, a gap
_CHUNK = 1024
_PASSES: weakref.WeakSet[_IndexStream | _HandOff] = weakref.WeakSet()  # passes not reported yet


def close_passes() -> None:
    """Report every DataLoader pass still open (an iterator the script kept alive)."""
    for stream in list(_PASSES):
        stream._close()  # noqa: SLF001 -- module-level hook for the class's own state


def _index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        index = getattr(value, "__index__", None)
        if index is None:
            raise InputError(f"expected integer indices, found a {type(value).__qualname__}")
        value = index()
    if not -(2**63) <= value < 2**63:
        raise InputError(f"expected indices that fit in 64 bits, found {value}")
    return int(value)


def _current_runtime() -> Runtime | None:
    from slsa_dist.capture import _runtime

    return _runtime.current()


def _attribute(value: Any, name: str) -> Any:
    """``getattr(value, name, None)`` that survives properties that raise."""
    if value is None:
        return None
    try:
        return getattr(value, name, None)
    except Exception:  # a hostile property: as if absent
        return None


def _loader_name(loader: Any) -> str:
    try:
        dataset = loader.__dict__.get("dataset") if hasattr(loader, "__dict__") else None
        kind = type(dataset).__qualname__ if dataset is not None else "?"
        return f"a {type(loader).__qualname__} over {kind}"
    except Exception:
        return "a DataLoader"


def _describe_path(path: Any) -> str:
    try:
        return repr(os.fsdecode(path)) if isinstance(path, (str, bytes, os.PathLike)) \
            else f"({type(path).__qualname__})"
    except Exception:
        return "(unprintable)"


def _batch_samplers(loader: Any) -> list[Any]:
    """The loader's batch sampler and those it wraps (``.batch_sampler`` inside)."""
    chain: list[Any] = []
    current = _attribute(loader, "batch_sampler")
    while current is not None and len(chain) < 8 and all(c is not current for c in chain):
        chain.append(current)
        current = _attribute(current, "batch_sampler")
    return chain


def _innermost_sampler(loader: Any) -> Any:
    chain = _batch_samplers(loader)
    inner = _attribute(chain[-1], "sampler") if chain else None
    return inner if inner is not None else _attribute(loader, "sampler")


_WRAPPER_PARAMETERS = ("num_processes", "process_index", "split_batches", "even_batches",
                       "skip_batches", "batch_size", "drop_last")


def _index_parameters(loader: Any) -> dict[str, Any]:
    from slsa_dist.capture._samplers import _sampler_parameters

    params = _sampler_parameters(_innermost_sampler(loader))
    chain = _batch_samplers(loader)
    if len(chain) > 1 or (chain and type(chain[0]).__name__ != "BatchSampler"):
        # the batches came through wrappers that pick or skip: say which, and how
        params["batchSamplers"] = [
            {"type": type(b).__name__,
             **{k: v for k in _WRAPPER_PARAMETERS
                if isinstance(v := _attribute(b, k), (bool, int, str))}}
            for b in chain]
    return params


# DataLoaders whose passes are recorded (weakly: a loader's life is its owner's)
_TRACKED: weakref.WeakKeyDictionary[Any, _Tracked] = weakref.WeakKeyDictionary()


def wrap_loader(loader: Any) -> bool:
    """Record what ``loader`` hands out, pass by pass (as zero-code capture does for every
    DataLoader made after it was installed); for loaders made before, by a framework
    callback. True when the loader is recorded from now on and was not before.

    Nothing about the loader changes: its sampler, batch sampler, length and the items
    they yield stay the user's own. Never raises; a loader it cannot follow (an iterable
    dataset, whose samples no index names) is a capture gap.
    """
    try:
        return _wrap_loader(loader)
    except Exception as exc:  # the loader works as without capture
        capture_gap(f"data consumed from {_loader_name(loader)}", exc)
        return False


def _wrap_loader(loader: Any) -> bool:
    try:
        from torch.utils.data import IterableDataset
    except ImportError:
        return False
    from slsa_dist.capture._samplers import RecordingIterable, RecordingSampler

    if loader in _TRACKED:
        return False
    dataset = _attribute(loader, "dataset")
    if isinstance(dataset, RecordingIterable):
        return False  # recorded explicitly, sample by sample
    if isinstance(dataset, IterableDataset):
        capture_gap(f"data consumed from {_loader_name(loader)}",
                    "an iterable dataset has no index sampler to follow; wrap it in "
                    "slsa_dist.torch.RecordingIterable to record its shards")
        return False
    samplers = [_attribute(loader, "sampler"), *_batch_samplers(loader)]
    samplers += [_attribute(b, "sampler") for b in samplers[1:]]
    if any(isinstance(x, RecordingSampler) for x in samplers):
        return False  # recorded explicitly
    if not _ITERATOR_PATCHED:
        capture_gap(f"data consumed from {_loader_name(loader)}",
                    "this torch's DataLoader iterator has no index stream to follow")
        return False
    _TRACKED[loader] = _Tracked(loader, _index_shard(dataset))
    return True


def _patch_safetensors() -> None:
    try:
        import safetensors.torch as st
    except ImportError:
        return
    if not hasattr(st.save_file, "__slsa_dist_original__"):
        st.save_file = _wrap_save(st.save_file, None, 1, "filename")


_INSTALLED: Capture | None = None  # the capture of the rank this process runs now
_HOOKED = False  # the patches and the audit hook: once per process (hooks stay for good)


_AUDITING = False  # the audit hook is in (early, or by install): once per process
# Files opened before this process's rank was known (Lightning's own launcher: the rank
# comes with the Trainer, after the script's top level read its data), as absolute
# names, replayed into the rank's capture when it starts. None: not buffering.
_EARLY: dict[str, tuple[Any, Any]] | None = None
_EARLY_OVER = [0]
_EARLY_LIMIT = 4096


def _audit(event: str, args: tuple[Any, ...]) -> None:
    capture = _INSTALLED
    if capture is not None:
        capture.audit(event, args)
    elif _EARLY is not None and event == "open":
        _buffer(args)


def _buffer(args: tuple[Any, ...]) -> None:
    """Keep an open before the rank's capture started; never raises (the open goes on)."""
    try:
        early = _EARLY
        path, mode, flags = args
        if early is None or isinstance(path, int) or reading_own():
            return
        name = os.path.abspath(os.fsdecode(path) if isinstance(path, bytes) else str(path))
        if name.endswith(_CODE_SUFFIXES) or name in early:
            return  # the interpreter importing modules: never an input
        if len(early) >= _EARLY_LIMIT:
            _EARLY_OVER[0] += 1
            return
        early[name] = (mode, flags)
    except Exception:  # noqa: S110 -- nothing to report to yet; the open goes on
        pass


def watch_early() -> None:
    """Keep the files this process opens until its rank's capture starts (:func:`install`
    replays them into it): a process whose rank is known only later (Lightning's own
    launcher) records what its script read before that too. Never raises."""
    global _EARLY, _AUDITING  # noqa: PLW0603 -- one audit hook per process
    if _INSTALLED is not None or _EARLY is not None:
        return
    try:
        _EARLY = {}
        if not _AUDITING:
            sys.addaudithook(_audit)
            _AUDITING = True
    except Exception:  # unrecorded, as before; install says nothing either
        _EARLY = None


def _replay_early(capture: Capture) -> None:
    """The files opened before ``capture`` started, into it (read or written)."""
    global _EARLY
    early, _EARLY = _EARLY, None
    if not early:
        return
    for name, (mode, flags) in early.items():
        capture.audit("open", (name, mode, flags))
    if _EARLY_OVER[0]:
        capture_gap("files read before the rank's recorder started",
                    f"{_EARLY_OVER[0]} more than the {_EARLY_LIMIT} kept were opened; "
                    "those were not followed")


def install(runtime: Runtime, *, script: str | None = None) -> Capture:
    """Turn zero-code capture on for ``runtime`` (once per runtime: a process that runs
    another rank's lifetime afterwards, a Ray worker, gets a fresh capture for it);
    ``runtime.finish`` reports it.

    ``script`` is the entry script: modules imported from beside it are recorded."""
    global _INSTALLED, _HOOKED  # noqa: PLW0603 -- one audit hook per process: hooks cannot be removed
    if _INSTALLED is not None and _INSTALLED.runtime is runtime:
        return _INSTALLED
    capture = _INSTALLED = Capture(runtime)
    capture.script = script or (sys.argv[0] if sys.argv and sys.argv[0].endswith(".py")
                                else None)
    if not _HOOKED:
        _HOOKED = True
        hooks: list[tuple[str, Callable[[], None]]] = [
            ("torch.save and dcp.save", _patch_torch),
            ("DataLoader samplers", _patch_dataloader),
            ("safetensors save_file", _patch_safetensors),
            ("file reads", _hook_audit)]
        for what, hook in hooks:
            try:
                hook()
            except Exception as exc:  # train on; this part goes unrecorded
                capture_gap(f"zero-code capture of {what}", exc)
    try:
        _replay_early(capture)
    except Exception as exc:  # the reads before it are what is missing
        capture_gap("files read before the rank's recorder started", exc)
    runtime.capture = capture
    return capture


def _hook_audit() -> None:
    global _AUDITING  # noqa: PLW0603 -- one audit hook per process
    if not _AUDITING:
        sys.addaudithook(_audit)
        _AUDITING = True
