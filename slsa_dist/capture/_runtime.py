"""This process's recorder: what capture reports through, and the explicit record API.

An integration (``slsa_dist.init``, in :mod:`slsa_dist.integrations`) installs the
:class:`Runtime` with the rank agent it started; the samplers, the save hooks and
the DCP writer find it with :func:`current`. Capture never imports the transport
(:class:`Recorder` is what it needs of one); the settings ``init`` reads are listed
in :mod:`slsa_dist.integrations._contract`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from slsa_dist.digest._manifest import digest_path
from slsa_dist.errors import InputError

__all__ = ["Recorder", "Runtime", "capture_gap", "capture_gaps_allowed", "current",
           "install", "own_reads", "reading_own", "record_artifact", "record_hyperparameters",
           "record_input", "reset"]

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_CURRENT: Runtime | None = None
# (pid, what, why) already reported: a hook failing on every batch says so once
_GAPS_SEEN: set[tuple[int, str, str]] = set()
_GAPS_LOCK = threading.Lock()


class Recorder(Protocol):
    """What capture reports through: the rank agent (``collect``), or anything that
    takes the same calls. Capture never imports the transport; an integration hands
    it one (``slsa_dist.init``)."""

    def record_shard(self, name: str, digest: Mapping[str, str], *, uri: str = "",
                     samples: int = 0, index_digest: str = "", epoch: int = 0,
                     sampler: Mapping[str, Any] | None = None) -> None: ...

    def record_file(self, artifact: str, path: str, digest: Mapping[str, str], *,
                    size: int = 0, role: str = "checkpoint") -> None: ...

    def plan_artifact(self, artifact: str, files: Iterable[str], *,
                      role: str = "checkpoint") -> None: ...

    def record_dependency(self, kind: str, *, name: str = "", uri: str = "",
                          digest: Mapping[str, str] | None = None,
                          annotations: Mapping[str, Any] | None = None) -> None: ...

    def set_parameters(self, *, external: Mapping[str, Any] | None = None,
                       internal: Mapping[str, Any] | None = None) -> None: ...

    def record_inventory(self, inventory: Mapping[str, Any]) -> None: ...

    def annotate(self, key: str, value: Any) -> None: ...

    def record_capture_gap(self, what: str, why: str, *, allowed: bool = False) -> None: ...

    def complete(self, *, exit_code: int = 0, state: str = "SUCCEEDED") -> None: ...

    def close(self, timeout: float = 30.0) -> bool: ...


class _Capture(Protocol):
    def finish(self) -> None: ...


@dataclass
class Runtime:
    agent: Recorder
    job_id: str
    rank: int
    world_size: int
    attempt: int
    node_id: str
    artifact_root: Path
    finished: bool = False
    completed: bool = False  # the completion went out: nothing more can be reported
    capture: _Capture | None = None  # zero-code capture, when on (capture/_auto.py)
    # what record_artifact recorded whole: zero-code capture leaves files inside them out
    recorded_roots: set[str] = field(default_factory=set)
    exit_code: int | None = None  # what finish reported: the rank's exit code

    def artifact_name(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the artifact root, or absolute when outside it."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.artifact_root.resolve()).as_posix()
        except ValueError:
            return resolved.as_posix()

    def finish(self, *, exit_code: int = 0, state: str | None = None,
               timeout: float | None = None) -> bool:
        """Report completion (once) and flush, waiting at most ``timeout`` seconds
        (``SLSA_FLUSH_TIMEOUT``, default 30). True when everything was acknowledged."""
        if self.finished:
            return True
        self.finished = True
        if self.capture is not None:
            self.capture.finish()  # drains what it still digests; what it cannot is a gap
        self.completed = True
        self.exit_code = exit_code
        self.agent.complete(exit_code=exit_code,
                            state=state or ("SUCCEEDED" if exit_code == 0 else "FAILED"))
        return self.agent.close(timeout=timeout if timeout is not None else
                                float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30")))


def current() -> Runtime | None:
    """This process's runtime, or None when ``init`` was not called."""
    return _CURRENT


def reset() -> None:
    """Forget this process's runtime (after ``finish``), so the next ``init`` starts anew.

    For processes that host several ranks' lifetimes, like a Ray worker actor
    that runs the next attempt's training function.
    """
    global _CURRENT  # noqa: PLW0603 -- one runtime per process, by design
    with _LOCK:
        _CURRENT = None


_OWN = threading.local()


@contextlib.contextmanager
def own_reads() -> Iterator[None]:
    """Files slsa-dist reads itself on this thread (digesting what the rank wrote, or an
    input recorded explicitly) are not inputs the zero-code capture should see."""
    depth: int = getattr(_OWN, "depth", 0)
    _OWN.depth = depth + 1
    try:
        yield
    finally:
        _OWN.depth = depth


def reading_own() -> bool:
    """Whether this thread is inside :func:`own_reads`."""
    depth: int = getattr(_OWN, "depth", 0)
    return depth > 0


def install(make: Callable[[], Runtime]) -> tuple[Runtime, bool]:
    """This process's runtime: the one installed already, or ``make()``'s, installed now.
    True when it is new (the caller records what the rank runs)."""
    global _CURRENT  # noqa: PLW0603 -- one runtime per process, by design
    with _LOCK:
        if _CURRENT is not None:
            return _CURRENT, False
        _CURRENT = make()
        return _CURRENT, True


def _require() -> Runtime:
    runtime = _CURRENT
    if runtime is None:
        raise InputError("slsa_dist: expected slsa_dist.init() (or the slsa_dist.exec wrapper) "
                         "before recording, found no runtime")
    return runtime


def record_artifact(path: str | os.PathLike[str], *, name: str | None = None,
                    role: str = "output") -> str:
    """Digest a file or directory this rank wrote and report it. Returns the root digest.

    ``role`` is ``output`` (a subject), ``final`` (the final model, a subject)
    or ``checkpoint`` (intermediate, a byproduct).
    """
    runtime = _require()
    runtime.recorded_roots.add(os.path.abspath(path))  # an output: its reads are no input
    with own_reads():  # every file: what verify will hash (the record signs no ignores)
        manifest = digest_path(path, ignore_paths=())
    artifact = name or runtime.artifact_name(path)
    for resource in manifest.resources:
        runtime.agent.record_file(artifact, resource.path, {"sha256": resource.digest},
                                  size=resource.size, role=role)
    return manifest.root_digest


def record_input(path: str | os.PathLike[str], *, kind: str = "model", name: str | None = None,
                 uri: str | None = None) -> str:
    """Digest an input (a base model, a dataset) and report it as a dependency.

    A directory is identified by its OMS manifest root, as slsa-dist names
    every multi-file artifact, so the provenance that produced it can be
    found by that digest. Returns the digest.
    """
    runtime = _require()
    # the Statement model, only for a rank that records an input this way
    from slsa_dist.digest._descriptors import input_descriptor

    with own_reads():  # recorded here as the kind the caller says, not as a plain read
        manifest = digest_path(path, ignore_paths=())
    dependency = input_descriptor(manifest, path, kind=kind, name=name, uri=uri)
    runtime.agent.record_dependency(
        kind, name=dependency.name or "", uri=dependency.uri or "", digest=dependency.digest,
        annotations={k: v for k, v in dependency.annotations.items() if k != "slsadist_kind"})
    return dependency.digest["sha256"]


def record_hyperparameters(values: Mapping[str, Any]) -> None:
    """Record hyperparameters as external parameters, in their JSON types (a float stays
    a number; NaN and the infinities, which JSON has no number for, become strings)."""
    _require().agent.set_parameters(external={"hyperparameters": dict(values)})


def capture_gaps_allowed() -> bool:
    """The job allows capture gaps (``SLSA_ALLOW_CAPTURE_GAPS=1``): they are still listed,
    but do not make the provenance incomplete."""
    return os.environ.get("SLSA_ALLOW_CAPTURE_GAPS", "").strip().lower() in ("1", "true", "yes")


def capture_gap(what: str, why: BaseException | str) -> None:
    """Capture could not follow ``what``; report it (once per process) as a capture gap.

    Called from hooks inside the user's process: never raises. Without a runtime (or
    once it finished) the gap is only logged.
    """
    try:
        reason = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
        key = (os.getpid(), what, reason)
        with _GAPS_LOCK:
            if key in _GAPS_SEEN:
                return
            _GAPS_SEEN.add(key)
        log.warning("slsa-dist: capture gap: %s (%s); training goes on, the provenance "
                    "says what is missing", what, reason)
        runtime = _CURRENT
        if runtime is None or runtime.completed:
            return
        runtime.agent.record_capture_gap(what, reason, allowed=capture_gaps_allowed())
    except Exception:  # a gap report must not break what it reports on
        log.warning("slsa-dist: could not report a capture gap for %s", what, exc_info=True)
