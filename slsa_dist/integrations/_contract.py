"""The contract every integration keeps, and ``slsa_dist.init``, which keeps it.

An integration (``slsa-torchrun`` and its plugin, the Ray callback, the Hugging Face
and Lightning callbacks, ``-m slsa_dist.exec``) must, in this order:

1. **Start the node agent** once per node (:func:`slsa_dist.collect._node.start_node_agent`,
   with a :class:`~slsa_dist.collect._relay.NodeRelay` for large jobs): it registers
   the node, answers the coordinator's nonce with hardware evidence, and reports the
   host's inventory and packages.
2. **Record attempts** from the launcher's truth: which ranks each attempt started on
   this node, and how each ended (``Agent.record_attempt``: exit codes, signals).
3. **Turn capture on** in each training process: :func:`init` (this module) starts the
   rank agent and installs the capture runtime; zero-code capture
   (:func:`slsa_dist.capture._auto.install`) follows data, reads and saves.
4. **Finish** each rank once (``Runtime.finish``) with its real exit state, so the
   coordinator can tell a rank that ended from one that vanished.

Capture below this floor never imports the transport or signing; this module is
where the rank agent (``collect``) meets the capture runtime.

Settings come from arguments or, as launchers pass them, from the environment:

=====================  ==============================================
``SLSA_COORDINATOR``   coordinator ``host:port`` (required)
``SLSA_JOB_ID``        job id (default: ``TORCHELASTIC_RUN_ID``)
``RANK``/``WORLD_SIZE``  torchrun's; ``SLSA_RANK``/``SLSA_WORLD_SIZE`` win; without
                       ``RANK``, Lightning's own launcher's ``NODE_RANK`` and
                       ``LOCAL_RANK`` (with ``LOCAL_WORLD_SIZE`` beyond node 0)
``SLSA_ATTEMPT``       attempt (default: ``TORCHELASTIC_RESTART_COUNT``)
``SLSA_NODE_ID``       node id (default: the host name)
``SLSA_SPOOL_DIR``     where unacknowledged events are kept
``SLSA_COORDINATOR_RATE``  calls/s the coordinator serves (default 1000; 0: off):
                       a rank without a node relay makes its first call
                       ``rank * 4 / rate`` seconds after it starts
``SLSA_ARTIFACT_ROOT`` artifact names are paths relative to it (default: cwd)
``SLSA_NODE_AGENT``    set by the torchrun plugin: the node agent reports
                       host inventory and packages, so ranks need not
=====================  ==============================================
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from slsa_dist.capture import _inventory as inventory
from slsa_dist.capture._runtime import Runtime, current, install
from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.errors import InputError
from slsa_dist.model._statement import redact_url

__all__ = ["entry_point_name", "init", "remote_uri"]


def _env_int(names: Sequence[str], default: int | None = None) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value != "":
            try:
                return int(value)
            except ValueError:
                raise InputError(f"{name}: expected an integer, found {value!r}") from None
    return default


_SCP = re.compile(r"^(?:[^/:@\s]+@)?([^/:\s]+):(?!//)(.*)$")


def remote_uri(remote: str, where: Path) -> str:
    """A git remote as an RFC 3986 URI a provenance may carry (SPDX/pip ``git+`` form).

    ``https://token@host/o/x.git`` -> ``https://host/o/x.git`` (user-info and query
    dropped: a token is never signed); scp-style ``git@host:o/x.git`` ->
    ``ssh://host/o/x.git``; a local path (or no remote: the work tree ``where``) ->
    ``file:///abs/path``.
    """
    if "://" in remote:
        return redact_url(remote)
    scp = _SCP.match(remote)
    if scp is not None and not Path(remote).exists():
        path = scp.group(2).lstrip("/")
        return f"ssh://{scp.group(1)}/{path}"
    local = Path(remote) if remote else where
    if not local.is_absolute():
        local = where / local
    return local.resolve().as_uri()


def _env_rank() -> int:
    """This process's global rank from the environment its launcher set: ``SLSA_RANK``,
    torchrun's ``RANK``, or, from launchers that set only node and local ranks
    (Lightning's own), ``NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK``. Never 0 by
    default where a local rank says otherwise: two processes must not both be rank 0.

    Raises:
        InputError: a local rank on a node past the first, with no local world size.
    """
    rank = _env_int(("SLSA_RANK", "RANK"))
    if rank is not None:
        return rank
    local = _env_int(("LOCAL_RANK",))
    if local is None:
        return 0
    node = _env_int(("NODE_RANK", "GROUP_RANK"), 0) or 0
    if node == 0:
        return local
    per_node = _env_int(("LOCAL_WORLD_SIZE",))
    if per_node is None:
        raise InputError(f"rank: expected RANK or SLSA_RANK (or LOCAL_WORLD_SIZE) for local "
                         f"rank {local} on node {node}, found neither")
    return node * per_node + local


def entry_point_name(entry: str | os.PathLike[str] | None) -> str:
    """The script as every rank names it: relative to the working directory when under it,
    else absolute. Ranks of one job name it alike whatever their launcher passed (Lightning
    starts its other processes with the absolute path of the ``train.py`` the user ran)."""
    if not entry:
        return ""
    path = Path(entry)
    if not path.is_file():
        return str(entry)  # a module (-m), or a command: as given
    resolved, here = path.resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)


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
        remote = remote_uri(git("config", "--get", "remote.origin.url") or "", where)
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
    entry_point: str | None = None,
    finish_at_exit: bool = True,
) -> Runtime:
    """Start this process's rank agent (idempotent) and record what it runs.

    Records the code (git commit and dirty state, else the script digest), the
    command line and ``hyperparameters`` as external parameters, and the
    rank's inventory. At exit it reports completion and flushes, unless
    ``finish_at_exit`` is False (the ``slsa_dist.exec`` wrapper reports the
    exit code itself). ``entry_point``: the script's name as the launcher chose it for
    every rank (Ray's driver), recorded as is; otherwise :func:`entry_point_name`.

    Raises:
        InputError: no coordinator address or job id was given or found.
    """
    def make() -> Runtime:
        address = coordinator or os.environ.get("SLSA_COORDINATOR")
        if not address:
            raise InputError("coordinator: expected an address in init(coordinator=...) or "
                             "SLSA_COORDINATOR, found neither")
        job = job_id or os.environ.get("SLSA_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
        if not job:
            raise InputError("job id: expected init(job_id=...), SLSA_JOB_ID or "
                             "TORCHELASTIC_RUN_ID, found none")
        the_rank = rank if rank is not None else _env_rank()
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
        return Runtime(agent=agent, job_id=job, rank=the_rank, world_size=world,
                       attempt=the_attempt, node_id=node,
                       artifact_root=Path(os.environ.get("SLSA_ARTIFACT_ROOT", os.getcwd())))

    runtime, new = install(make)
    if not new:
        return runtime
    agent = runtime.agent

    arguments = list(sys.argv[1:] if argv is None else argv[1:])
    entry = script or (argv[0] if argv else sys.argv[0])
    script_path = Path(entry) if entry and Path(entry).is_file() else None
    external: dict[str, Any] = {
        "entryPoint": entry_point if entry_point is not None else entry_point_name(entry),
        "arguments": arguments}
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
        _watch_sys_exit()
        atexit.register(_finish_at_exit)
    return runtime


# What the main thread last passed to sys.exit (empty: it did not). At exit the
# interpreter keeps the code of a SystemExit to itself, so without this a rank that
# called sys.exit(3) reported exit 0.
_EXIT_STATUS: list[object] = []


def _watch_sys_exit() -> None:
    """Remember what the main thread passes to ``sys.exit``, for the atexit hook; the
    call itself is unchanged. A ``raise SystemExit(n)`` written out is not seen: the
    rank then reports 0, and its launcher's exit code makes that a conflict
    (``JobState._exit_disagreements``), never a success."""
    original = sys.exit
    if getattr(original, "__wrapped__", None) is not None:  # watched already
        return

    @functools.wraps(original)
    def watched_exit(status: Any = None, /) -> NoReturn:
        if threading.current_thread() is threading.main_thread():
            _EXIT_STATUS[:] = [status]
        original(status)

    sys.exit = watched_exit


def _exit_state() -> tuple[int, str]:
    """How this process is ending, as an atexit hook can tell: an uncaught exception
    (1; -2 TERMINATED for Ctrl-C, as Python then dies by SIGINT), else what the main
    thread passed to ``sys.exit`` (its low byte, as the launcher sees it), else 0."""
    failed = getattr(sys, "last_value", None)
    if isinstance(failed, KeyboardInterrupt):
        return -signal.SIGINT, "TERMINATED"
    if failed is not None:
        return 1, "FAILED"
    code = 0
    if _EXIT_STATUS:
        status = _EXIT_STATUS[0]
        code = (0 if status is None else status & 0xFF if isinstance(status, int) else 1)
    return code, "SUCCEEDED" if code == 0 else "FAILED"


def _finish_at_exit() -> None:
    runtime = current()
    if runtime is not None and not runtime.finished:
        code, state = _exit_state()
        runtime.finish(exit_code=code, state=state)
