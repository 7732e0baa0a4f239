"""The torchrun plugin: ``torchrun --logs-specs slsa`` (entry point ``torchrun.logs_specs``).

It runs inside the torchrun agent process, once per node:

* on the first worker-group start it starts the **node agent** (it lives as
  long as torchrun, across worker restarts), registers the node and sends
  its inventory and installed packages;
* it starts the **node relay** (``slsa_dist.collect._relay``): the workers
  report to it over a Unix socket and it forwards in batches, so the
  coordinator holds one connection per node, not per rank;
* every worker-group start (``LogsSpecs.reify``) is one **attempt**: it is
  recorded with its restart count, run id and ranks, and the agent settings
  are injected into every worker's environment;
* with ``--event-log-handler slsa`` (``slsa-torchrun`` adds it) the final
  state and exit code of each rank and of the run are recorded.

Logging behaviour is torchrun's own (this is a ``DefaultLogsSpecs``).
Settings come from the torchrun process's environment: ``SLSA_COORDINATOR``
(required), ``SLSA_JOB_ID`` (default: the rendezvous run id),
``SLSA_NODE_ID`` (default: host name), ``SLSA_SPOOL_DIR``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, LogsDest

from slsa_dist.collect._agent import NodeIdentity, tls_from_env
from slsa_dist.collect._node import start_node_agent
from slsa_dist.collect._relay import NodeRelay
from slsa_dist.errors import TransportError

__all__ = ["SlsaEventHandler", "SlsaLogsSpecs"]

log = logging.getLogger(__name__)
_BOOT = Path(__file__).parent / "_boot"


class _Node:
    """The node agent of this torchrun process."""

    _instance: _Node | None = None
    _lock = threading.Lock()

    def __init__(self, *, job_id: str, node_rank: int) -> None:
        self.coordinator = os.environ["SLSA_COORDINATOR"]
        self.job_id = job_id
        self.node_id = os.environ.get("SLSA_NODE_ID") or socket.gethostname()
        # Inventory and attestation run while the workers start, unless the job must not
        # run without provenance (then a coordinator that cannot be reached stops it here).
        self.agent = start_node_agent(coordinator=self.coordinator, job_id=job_id,
                                      node_id=self.node_id, node_rank=node_rank,
                                      spool_dir=os.environ.get("SLSA_SPOOL_DIR"),
                                      background=os.environ.get("SLSA_REQUIRED") != "1")
        launcher = json.loads(os.environ.get("SLSA_INTERNAL_PARAMETERS") or "{}")
        self.agent.set_parameters(internal=launcher or {"launcher": "torchrun"})
        self.relay = self._start_relay(job_id)
        self.attempt = -1
        self.run_id = ""
        self.ranks: list[int] = []
        self.exit_codes: dict[int, int] = {}
        self.failed = False  # a worker of the current attempt failed
        self.finished = False

    def _start_relay(self, job_id: str) -> NodeRelay | None:
        """The node relay its workers report through (``SLSA_NODE_RELAY=0``: none, each
        rank connects to the coordinator itself). A relay that cannot start is said, and
        the ranks connect directly."""
        if os.environ.get("SLSA_NODE_RELAY", "1") == "0":
            return None
        tag = hashlib.sha256(f"{job_id}/{self.node_id}/{os.getpid()}".encode()).hexdigest()
        # Unix socket paths are short (108 bytes): a per-user folder, a hashed name.
        path = Path(tempfile.gettempdir()) / f"slsa-{os.getuid()}" / f"{tag[:16]}.sock"
        try:
            relay = NodeRelay(coordinator=self.coordinator, job_id=job_id, node_id=self.node_id,
                              socket_path=path,
                              credentials=tls_from_env(NodeIdentity(node_id=self.node_id)))
            relay.start()
        except (OSError, RuntimeError) as exc:
            log.warning("slsa: no node relay (%s); ranks report to the coordinator directly",
                        exc)
            return None
        atexit.register(relay.close, 1.0)
        return relay

    @classmethod
    def get(cls, *, job_id: str, node_rank: int) -> _Node:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(job_id=job_id, node_rank=node_rank)
            return cls._instance

    @classmethod
    def existing(cls) -> _Node | None:
        return cls._instance

    def attempt_started(self, attempt: int, run_id: str, ranks: list[int]) -> None:
        if self.attempt >= 0 and attempt != self.attempt:
            # torchrun only starts a new worker group after the last one failed.
            self.agent.record_attempt(attempt=self.attempt, run_id=self.run_id, ranks=self.ranks,
                                      state="RESTARTED", exit_codes=self.exit_codes)
        self.attempt, self.run_id, self.ranks, self.exit_codes = attempt, run_id, ranks, {}
        self.failed = False
        self.agent.record_attempt(attempt=attempt, run_id=run_id, ranks=ranks, state="STARTED")

    def worker_finished(self, rank: int, exit_code: int | None, *, failed: bool) -> None:
        """A worker's end as torchrun saw it: its exit code (None when torchrun gave
        none: a worker it stopped without a failure of its own), and whether it failed."""
        if exit_code is not None:
            self.exit_codes[rank] = exit_code
        self.failed = self.failed or failed or bool(exit_code)

    def run_finished(self, state: str) -> None:
        if self.finished:
            return
        self.finished = True
        # torchrun's agent-level SUCCEEDED says its run loop returned, not that the
        # workers succeeded: the attempt failed when any worker did.
        if self.failed:
            state = "FAILED"
        self.agent.record_attempt(attempt=self.attempt, run_id=self.run_id, ranks=self.ranks,
                                  state=state, exit_codes=self.exit_codes)
        if not self.agent.close(timeout=float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30"))):
            log.warning("slsa: node events not all acknowledged; they stay in the spool")
        if self.relay is not None:  # the workers have exited: nothing more to relay
            self.relay.close()


class SlsaLogsSpecs(DefaultLogsSpecs):
    """torchrun's default logs behaviour plus attempt recording and env injection."""

    def reify(self, envs: dict[int, dict[str, str]]) -> LogsDest:
        dest = super().reify(envs)
        if not os.environ.get("SLSA_COORDINATOR"):
            log.warning("slsa: SLSA_COORDINATOR is not set; this run is not recorded")
            return dest
        first = envs[min(envs)]
        run_id = first.get("TORCHELASTIC_RUN_ID", "")
        job_id = os.environ.get("SLSA_JOB_ID") or run_id
        try:
            node = _Node.get(job_id=job_id, node_rank=int(first.get("GROUP_RANK", "0")))
        except TransportError as exc:  # only with --slsa-required: otherwise it warns
            raise SystemExit(f"slsa-torchrun: error: {exc}, and --slsa-required asks for "
                             "provenance or no run") from None
        # The attempt is the number of worker groups this launcher started before, not
        # torchrun's restart count: a launcher restarts its workers for a membership
        # change (another node failed and rejoined the rendezvous) without counting it,
        # so two survivors could otherwise call the same attempt 0 and 1 (ADR 0008).
        attempt = node.attempt + 1
        node.attempt_started(attempt, run_id, sorted(int(e["RANK"]) for e in envs.values()))
        settings = {"SLSA_COORDINATOR": node.coordinator, "SLSA_JOB_ID": job_id,
                    "SLSA_NODE_ID": node.node_id, "SLSA_ATTEMPT": str(attempt),
                    "SLSA_RUN_ID": run_id, "SLSA_NODE_AGENT": "1"}
        for name in ("SLSA_SPOOL_DIR", "SLSA_COORDINATOR_RATE"):  # pacing: collect._agent
            if os.environ.get(name):
                settings[name] = os.environ[name]
        if node.relay is not None:
            settings["SLSA_RELAY"] = node.relay.address
        for env in envs.values():
            env.update(settings)
            if os.environ.get("SLSA_BOOTSTRAP") == "1":  # opt-in zero-code capture
                existing = env.get("PYTHONPATH") or os.environ.get("PYTHONPATH", "")
                env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_BOOT), existing) if p)
        return dest


class SlsaEventHandler(logging.Handler):
    """``--event-log-handler slsa``: final per-rank states and the run's outcome."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._handle(record)
        except Exception:  # provenance must never break torchrun
            log.exception("slsa: could not record a torchelastic event")

    def _handle(self, record: logging.LogRecord) -> None:
        node = _Node.existing()
        if node is None:
            return
        try:
            event = json.loads(record.getMessage())
        except ValueError:
            return
        name = str(event.get("name", ""))
        metadata: dict[str, Any] = event.get("metadata") or {}
        state = name.rsplit(".", 1)[-1]
        if event.get("source") == "WORKER" and metadata.get("global_rank") is not None:
            # SUCCEEDED (no code: 0), FAILED (its code; -N for signal N: -15 for a
            # worker torchrun stopped, -9 for SIGKILL) or TERMINATED (torchrun stopped
            # the group and has no code of this worker's own)
            if state not in ("SUCCEEDED", "FAILED", "TERMINATED"):
                return
            extra = metadata.get("metadata")
            details = json.loads(extra) if isinstance(extra, str) else (extra or {})
            code = details.get("exit_code")
            if isinstance(code, list):  # torch records it as a 1-tuple
                code = code[0] if code else None
            if code is None and state != "TERMINATED":
                code = 0 if state == "SUCCEEDED" else 1
            node.worker_finished(int(metadata["global_rank"]),
                                 int(code) if code is not None else None,
                                 failed=state == "FAILED")
        elif event.get("source") == "AGENT" and state in ("SUCCEEDED", "FAILED"):
            node.run_finished(state)


def _register_event_handler() -> None:
    """Make ``--event-log-handler slsa`` valid. The registry is a private dict."""
    try:
        from torch.distributed.elastic.events import handlers
    except ImportError:
        return
    registry = getattr(handlers, "_log_handlers", None)
    if isinstance(registry, dict):
        registry.setdefault("slsa", SlsaEventHandler())


_register_event_handler()
