"""The rank agent of this process, configured from the launcher's environment.

``slsa_dist.init()`` builds it; the torch and Ray integrations find it with
:func:`current`. Settings come from arguments or, as launchers pass them,
from the environment:

=====================  ==============================================
``SLSA_COORDINATOR``   coordinator ``host:port`` (required)
``SLSA_JOB_ID``        job id (default: ``TORCHELASTIC_RUN_ID``)
``RANK``/``WORLD_SIZE``  torchrun's; ``SLSA_RANK``/``SLSA_WORLD_SIZE`` win
``SLSA_ATTEMPT``       attempt (default: ``TORCHELASTIC_RESTART_COUNT``)
``SLSA_NODE_ID``       node id (default: the host name)
``SLSA_SPOOL_DIR``     where unacknowledged events are kept
``SLSA_ARTIFACT_ROOT`` artifact names are paths relative to it (default: cwd)
``SLSA_NODE_AGENT``    set by the torchrun plugin: the node agent reports
                       host inventory and packages, so ranks need not
=====================  ==============================================
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slsa_dist.capture import inventory
from slsa_dist.collect.agent import Agent, RankIdentity
from slsa_dist.digest import digest_path
from slsa_dist.errors import InputError
from slsa_dist.provenance import input_descriptor, redact_url

if TYPE_CHECKING:
    from slsa_dist.capture.auto import Capture

__all__ = ["Runtime", "capture_gap", "current", "init", "record_artifact",
           "record_hyperparameters", "record_input", "reset"]

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_CURRENT: Runtime | None = None
# (pid, what, why) already reported: a hook failing on every batch says so once
_GAPS_SEEN: set[tuple[int, str, str]] = set()
_GAPS_LOCK = threading.Lock()


def _env_int(names: Sequence[str], default: int | None = None) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value != "":
            try:
                return int(value)
            except ValueError:
                raise InputError(f"{name}: expected an integer, found {value!r}") from None
    return default


@dataclass
class Runtime:
    agent: Agent
    job_id: str
    rank: int
    world_size: int
    attempt: int
    node_id: str
    artifact_root: Path
    finished: bool = False
    completed: bool = False  # the completion went out: nothing more can be reported
    capture: Capture | None = None  # zero-code capture, when on (capture/auto.py)
    # what record_artifact recorded whole: zero-code capture leaves files inside them out
    recorded_roots: set[str] = field(default_factory=set)

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


def _code_dependency(script: Path | None) -> dict[str, Any] | None:
    """The git commit (and whether the tree is dirty), else the script's digest."""
    where = (script.parent if script else Path.cwd()).resolve()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(where), *args], capture_output=True,  # noqa: S607 -- git from PATH, as the user runs it
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit:
        # A remote may carry a token (https://token@host/...): never into the provenance.
        remote = redact_url(git("config", "--get", "remote.origin.url") or f"file://{where}")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        annotations: dict[str, Any] = {"slsadist_dirty": dirty}
        if dirty:  # what the work tree changes against the commit, by digest
            diff = git("diff", "--no-color", "--no-ext-diff", "HEAD") or ""
            annotations["slsadist_dirtyDiff"] = {
                "sha256": hashlib.sha256(diff.encode()).hexdigest()}
        return {"name": "code", "uri": f"git+{remote}@{commit}", "digest": {"gitCommit": commit},
                "annotations": annotations}
    if script is not None and script.is_file():
        return {"name": script.name, "uri": f"file://{script.resolve()}",
                "digest": {"sha256": hashlib.sha256(script.read_bytes()).hexdigest()},
                "annotations": {"slsadist_dirty": True}}
    return None


def init(
    *,
    coordinator: str | None = None,
    job_id: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    attempt: int | None = None,
    node_id: str | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    argv: Sequence[str] | None = None,
    script: str | os.PathLike[str] | None = None,
    finish_at_exit: bool = True,
) -> Runtime:
    """Start this process's rank agent (idempotent) and record what it runs.

    Records the code (git commit and dirty state, else the script digest), the
    command line and ``hyperparameters`` as external parameters, and the
    rank's inventory. At exit it reports completion and flushes, unless
    ``finish_at_exit`` is False (the ``slsa_dist.exec`` wrapper reports the
    exit code itself).

    Raises:
        InputError: no coordinator address or job id was given or found.
    """
    global _CURRENT  # noqa: PLW0603 -- one runtime per process, by design
    with _LOCK:
        if _CURRENT is not None:
            return _CURRENT
        address = coordinator or os.environ.get("SLSA_COORDINATOR")
        if not address:
            raise InputError("coordinator: expected an address in init(coordinator=...) or "
                             "SLSA_COORDINATOR, found neither")
        job = job_id or os.environ.get("SLSA_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
        if not job:
            raise InputError("job id: expected init(job_id=...), SLSA_JOB_ID or "
                             "TORCHELASTIC_RUN_ID, found none")
        the_rank = rank if rank is not None else _env_int(("SLSA_RANK", "RANK"), 0)
        world = world_size if world_size is not None else _env_int(
            ("SLSA_WORLD_SIZE", "WORLD_SIZE"), 1)
        the_attempt = attempt if attempt is not None else _env_int(
            ("SLSA_ATTEMPT", "TORCHELASTIC_RESTART_COUNT"), 0)
        assert the_rank is not None
        assert world is not None
        assert the_attempt is not None
        node = node_id or os.environ.get("SLSA_NODE_ID") or socket.gethostname()
        run_id = os.environ.get("SLSA_RUN_ID") or os.environ.get("TORCHELASTIC_RUN_ID", "")
        agent = Agent(coordinator=address, job_id=job, spool_dir=spool_dir,
                      identity=RankIdentity(rank=the_rank, world_size=world, node_id=node,
                                            attempt=the_attempt, run_id=run_id))
        runtime = Runtime(agent=agent, job_id=job, rank=the_rank, world_size=world,
                          attempt=the_attempt, node_id=node,
                          artifact_root=Path(os.environ.get("SLSA_ARTIFACT_ROOT", os.getcwd())))
        _CURRENT = runtime

    arguments = list(sys.argv[1:] if argv is None else argv[1:])
    entry = script or (argv[0] if argv else sys.argv[0])
    script_path = Path(entry) if entry and Path(entry).is_file() else None
    external: dict[str, Any] = {"entryPoint": str(entry) if entry else "", "arguments": arguments}
    if hyperparameters:
        external["hyperparameters"] = dict(hyperparameters)
    agent.set_parameters(external=external)
    code = _code_dependency(script_path)
    if code is not None:
        agent.record_dependency("code", name=code["name"], uri=code["uri"],
                                digest=code["digest"], annotations=code["annotations"])
    own_node_agent = bool(os.environ.get("SLSA_NODE_AGENT"))
    agent.record_inventory(inventory.collect(packages=not own_node_agent))
    if finish_at_exit:
        atexit.register(_finish_at_exit)
    return runtime


def _finish_at_exit() -> None:
    runtime = _CURRENT
    if runtime is not None and not runtime.finished:
        failed = getattr(sys, "last_value", None) is not None  # an uncaught exception
        runtime.finish(exit_code=1 if failed else 0)


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
    manifest = digest_path(path)
    artifact = name or runtime.artifact_name(path)
    runtime.recorded_roots.add(os.path.abspath(path))
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
    dependency = input_descriptor(digest_path(path), path, kind=kind, name=name, uri=uri)
    runtime.agent.record_dependency(
        kind, name=dependency.name or "", uri=dependency.uri or "", digest=dependency.digest,
        annotations={k: v for k, v in dependency.annotations.items() if k != "slsadist_kind"})
    return dependency.digest["sha256"]


def record_hyperparameters(values: Mapping[str, Any]) -> None:
    """Record hyperparameters as external parameters (floats become strings)."""
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
