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
  wraps it: per rank and epoch, the count and a digest of the indices it
  yielded, and the sampler's parameters. Without shard files to map indices
  to, they are counted against a pseudo-shard named ``index:<Dataset>``
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

import functools
import importlib.abc
import importlib.machinery
import logging
import os
import queue
import site
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from slsa_dist.capture._runtime import Runtime
from slsa_dist.digest._manifest import digest_path
from slsa_dist.errors import InputError
from slsa_dist.model._records import INDEX_URI

__all__ = ["Capture", "install", "local_code", "wrap_loader"]

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
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.inputs = 0
        self.script: str | None = None  # the entry script, for the code it imported

    # -- inputs -----------------------------------------------------------------------

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """``sys.addaudithook`` callback; cheap for every event but ``open``."""
        if event != "open" or self.runtime.finished:
            return
        path, mode, flags = args
        if isinstance(path, int):
            return
        if isinstance(mode, str):
            if any(c in mode for c in "wax+"):
                return
        elif isinstance(flags, int) and flags & _WRITE_FLAGS:
            return
        name = os.fsdecode(path) if isinstance(path, bytes) else str(path)
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
        path = _model_directory(path) or path
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

    def _digest_inputs(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                st = os.stat(path)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) \
                        or path in self._saved:
                    continue
                version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if version in self._digested:
                    continue
                digest = self._digested[version] = digest_path(path).identity
            except OSError as exc:  # gone or unreadable since: say so, lose nothing else
                log.warning("slsa-dist: could not digest input %s: %s", path, exc)
                continue
            if self.runtime.finished:  # reported already; the hook outlives the rank
                continue
            self.inputs += 1
            self.runtime.agent.record_dependency(
                "input", name=self.runtime.artifact_name(path), uri=Path(path).as_uri(),
                digest={"sha256": digest}, annotations={"slsadist_captured": "read"})

    # -- outputs ----------------------------------------------------------------------

    def saved(self, path: Any) -> None:
        """A file this rank saved (``torch.save``, ``save_file``); digested at the end."""
        if isinstance(path, (str, os.PathLike)):
            with self._lock:
                self._saved[os.path.abspath(os.fspath(path))] = time.monotonic()

    def record_code(self, script: str | None) -> None:
        """Every module the run imported from the script's directory (or its git work
        tree), and the script, by digest: helper code beside the script too."""
        for path, digest in local_code(script, excluded=self._excluded):
            self.runtime.agent.record_dependency(
                "code", name=self.runtime.artifact_name(path), uri=Path(path).as_uri(),
                digest={"sha256": digest}, annotations={"slsadist_captured": "imported"})

    def finish(self, timeout: float = 300.0) -> None:
        """Wait for queued inputs, then report imported code and every saved file.

        Never raises: provenance must not fail the training run it describes; what
        could not be recorded is logged loudly (and is missing from the provenance).
        """
        try:
            self._finish(timeout)
        except Exception:
            log.exception("slsa-dist: zero-code capture could not record everything")

    def _finish(self, timeout: float) -> None:
        if self._thread is not None and os.getpid() == self._pid:
            self._queue.put(None)
            self._thread.join(timeout)
        main = sys.modules.get("__main__")
        self.record_code(self.script or getattr(main, "__file__", None))
        with self._lock:
            saved = sorted(self._saved, key=self._saved.__getitem__)
        recorded = tuple(self.runtime.recorded_roots)
        for path in saved:
            if _under(path, recorded):  # part of an artifact recorded whole (a checkpoint)
                continue
            if not os.path.isfile(path):
                log.warning("slsa-dist: saved file %s is gone; not recorded", path)
                continue
            manifest = digest_path(path)
            (resource,) = manifest.resources
            self.runtime.agent.record_file(self.runtime.artifact_name(path), resource.path,
                                           {"sha256": resource.digest}, size=resource.size,
                                           role="checkpoint")

    @property
    def outputs(self) -> int:
        return len(self._saved)


# Files that make a directory one model: read from it, the directory is the input,
# named by its manifest root as every multi-file artifact is (a DCP checkpoint, a
# Hugging Face model folder), not thousands of single files.
_MODEL_MARKERS = (".metadata", "model.safetensors.index.json", "pytorch_model.bin.index.json",
                  "config.json")


def _model_directory(path: str) -> str | None:
    folder = os.path.dirname(path)
    return folder if any(os.path.isfile(os.path.join(folder, m)) for m in _MODEL_MARKERS) \
        else None


def _wrap_save(original: Callable[..., Any], capture: Capture, position: int,
               keyword: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def save(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        capture.saved(args[position] if len(args) > position else kwargs.get(keyword))
        return result

    save.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    return save


def _patch_torch(capture: Capture) -> None:
    try:
        import torch
    except ImportError:
        return
    if not hasattr(torch.save, "__slsa_dist_original__"):
        torch.save = _wrap_save(torch.save, capture, 1, "f")
    # DCP costs a second to import: patch it when (and only if) the script imports it
    _after_import("torch.distributed.checkpoint.state_dict_saver", _patch_dcp)


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
        if kwargs.get("storage_writer") is None and checkpoint_id is not None:
            from slsa_dist.capture._dcp import DigestingFileSystemWriter

            kwargs["storage_writer"] = DigestingFileSystemWriter(checkpoint_id)
        return original(state_dict, *args, **kwargs)

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


def _index_shard(dataset: Any) -> Any:
    """The pseudo-shard zero-code capture reports a sampler's indices against: it names
    the dataset's class and length (``slsa-dist:index/<module.Class>``), not its bytes;
    the data's content is named by the inputs the process read."""
    import hashlib

    from slsa_dist.capture._samplers import Shard

    kind = f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    try:
        length = len(dataset)
    except TypeError:
        length = -1
    identity = hashlib.sha256(f"{kind}\0{length}".encode()).hexdigest()
    return Shard(name=f"index:{type(dataset).__name__}", digest={"sha256": identity}, start=0,
                 stop=2**62, uri=f"{INDEX_URI}{kind}")


def _patch_dataloader() -> None:
    try:
        from torch.utils.data import DataLoader
    except ImportError:
        return
    from slsa_dist.capture._samplers import RecordingSampler

    class _EpochSampler(RecordingSampler[Any]):
        """RecordingSampler whose epoch follows the wrapped sampler's own ``epoch`` (the
        script calls ``set_epoch`` on its sampler, not on this wrapper)."""

        def __iter__(self) -> Any:
            self.epoch = int(getattr(self.sampler, "epoch", self.epoch))
            yield from super().__iter__()
            if not hasattr(self.sampler, "epoch"):
                self.epoch += 1

    global _EPOCH_SAMPLER  # noqa: PLW0603 -- made once, with torch imported
    _EPOCH_SAMPLER = _EpochSampler
    original = DataLoader.__init__
    if hasattr(original, "__slsa_dist_original__"):
        return

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        wrap_loader(self)

    init.__slsa_dist_original__ = original  # type: ignore[attr-defined]
    DataLoader.__init__ = init  # type: ignore[method-assign]


_EPOCH_SAMPLER: Any = None


def wrap_loader(loader: Any) -> bool:
    """Record what ``loader``'s index sampler yields (as zero-code capture does for every
    DataLoader made after it was installed); for loaders made before, by a framework
    callback. True when a sampler was wrapped now."""
    try:
        from torch.utils.data import BatchSampler, IterableDataset
    except ImportError:
        return False
    from slsa_dist.capture._samplers import RecordingSampler

    if _EPOCH_SAMPLER is None or isinstance(getattr(loader, "dataset", None), IterableDataset):
        return False  # no index sampler (RecordingIterable is the explicit tool there)
    batches = getattr(loader, "batch_sampler", None)
    for _ in range(4):  # wrappers (accelerate's shard samplers) keep the real one inside
        if batches is None or isinstance(batches, BatchSampler):
            break
        batches = getattr(batches, "batch_sampler", None)
    shard = _index_shard(loader.dataset)
    if isinstance(batches, BatchSampler):
        if isinstance(batches.sampler, RecordingSampler):
            return False
        batches.sampler = _EPOCH_SAMPLER(batches.sampler, shards=[shard])
        return True
    sampler = getattr(loader, "sampler", None)
    if sampler is not None and not isinstance(sampler, RecordingSampler):
        object.__setattr__(loader, "sampler", _EPOCH_SAMPLER(sampler, shards=[shard]))
        return True
    return False


def _patch_safetensors(capture: Capture) -> None:
    try:
        import safetensors.torch as st
    except ImportError:
        return
    if not hasattr(st.save_file, "__slsa_dist_original__"):
        st.save_file = _wrap_save(st.save_file, capture, 1, "filename")


_INSTALLED: Capture | None = None


def install(runtime: Runtime, *, script: str | None = None) -> Capture:
    """Turn zero-code capture on for this process (once); ``runtime.finish`` reports it.

    ``script`` is the entry script: modules imported from beside it are recorded."""
    global _INSTALLED  # noqa: PLW0603 -- one audit hook per process: hooks cannot be removed
    if _INSTALLED is not None:
        _INSTALLED.runtime = runtime
        return _INSTALLED
    capture = _INSTALLED = Capture(runtime)
    capture.script = script or (sys.argv[0] if sys.argv and sys.argv[0].endswith(".py")
                                else None)
    _patch_torch(capture)
    _patch_dataloader()
    _patch_safetensors(capture)
    sys.addaudithook(capture.audit)
    runtime.capture = capture
    return capture
