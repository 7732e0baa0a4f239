"""The rank and node agent: reports events without ever blocking the caller.

Training code (or the torch/Ray integrations on its behalf) calls the
``record_*`` methods; each one builds an event and appends it to an in-memory
queue, nothing more. A background thread numbers the events, appends them to
a local spool file, sends them in batches and drops them from the spool once
the coordinator acknowledges that they are durably journaled.

* At least once: anything unacknowledged is resent after an outage; the
  coordinator deduplicates by sequence number, so the result is exactly once.
* The spool survives agent restarts: a new agent with the same identity
  resends what the old one left.
* Bounded: past ``queue_limit`` pending events new events are dropped and
  counted, and the count is reported with the next event so the provenance
  shows the gap; the training loop is never blocked. A rank's completion is
  never dropped: without it the rank would read as missing.
* Resynchronizing: a refusal marked ``slsa-resync`` (the coordinator does not
  know this sender, or expects an earlier sequence number because it lost
  its journal) makes the agent register again and renumber what it still
  holds from the coordinator's count; the events the coordinator had
  acknowledged and lost are reported as a gap, and nothing still held is
  dropped.
* Paced: a rank that reports straight to the coordinator (no node relay) makes its
  first call :func:`start_delay` after it starts, ``rank`` slots of a coordinator
  serving ``SLSA_COORDINATOR_RATE`` calls/s, so a large job's ranks do not all call
  at once and time out in the coordinator's queue; an answered call carrying a
  ``pace-ms`` trailer (a loaded coordinator) delays the next one, at most
  :data:`MAX_PACE` seconds. Events recorded meanwhile are queued and spooled; a
  flush or a close cuts the wait short. Refusals with a retry-after stay the
  safety valve.
* Fork-safe: no gRPC channel is opened before first use, and a forked child
  (a DataLoader worker) starts afresh as its own sender (``worker`` = pid).

>>> # agent = Agent(coordinator="127.0.0.1:50051", job_id="job-1",
>>> #               identity=RankIdentity(rank=0, world_size=2, node_id="n0"))
>>> # agent.record_shard("train-000.tar", {"sha256": "..."}, samples=512)
>>> # agent.complete(); agent.close()
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._spool import Spool
from slsa_dist.errors import InputError, TransportError

__all__ = ["Agent", "AgentStats", "NodeIdentity", "RankIdentity", "coordinator_rate", "jsonable",
           "start_delay", "tls_from_env"]

log = logging.getLogger(__name__)

_ROLES: dict[str, pb.ArtifactRole] = {
    "checkpoint": pb.CHECKPOINT, "final": pb.FINAL, "output": pb.OUTPUT,
    "auxiliary": pb.AUXILIARY}
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)
# Pacing (issue 27): the calls per second the coordinator serves, as the launcher
# passes it (SLSA_COORDINATOR_RATE; 0: no pacing), and what a rank's start costs it in
# calls (its registration and its first reports). The default is conservative: the
# Python coordinator served ~1,000-2,000 calls/s on a busy 2-core host (docs/
# performance.md); ranks start at 250/s, so 65,536 ranks take ~4.4 minutes to all be
# registered, and 8 ranks 32 ms.
RATE_ENV = "SLSA_COORDINATOR_RATE"
DEFAULT_RATE = 1000.0
CALLS_PER_START = 4
# A loaded coordinator's pace-ms hint is waited for, at most this long (seconds).
MAX_PACE = 5.0


@dataclass(frozen=True, kw_only=True)
class RankIdentity:
    """Who a rank agent reports as."""

    rank: int
    world_size: int
    node_id: str
    attempt: int = 0
    run_id: str = ""
    worker: int = 0
    pid: int = 0  # the process it registers as; 0: this one (upload-spool sets another)

    def spool_name(self) -> str:
        return f"rank-{self.rank}-a{self.attempt}-w{self.worker}.spool"


@dataclass(frozen=True, kw_only=True)
class NodeIdentity:
    """Who a node agent reports as."""

    node_id: str
    hostname: str = ""
    node_rank: int = 0

    def spool_name(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.node_id)
        return f"node-{safe}.spool"


@dataclass(frozen=True)
class AgentStats:
    queued: int
    unacked: int
    acked_through: int
    dropped: int
    errors: tuple[str, ...]


def tls_from_env(identity: RankIdentity | NodeIdentity) -> grpc.ChannelCredentials | None:
    """Client credentials from ``SLSA_TLS_DIR``, None when it is not set.

    "{kind}" (rank or node), "{id}" (the rank number or node id) and "{node}" (the node
    id) are filled in: /pki/{kind}-{id} for a certificate per identity, /pki/node-{node}
    (or a plain directory) for one node certificate that serves the node's agent and
    every rank it launched.
    """
    template = os.environ.get("SLSA_TLS_DIR")
    if not template:
        return None
    from slsa_dist.sign._ca import channel_credentials

    is_rank = isinstance(identity, RankIdentity)
    credentials: grpc.ChannelCredentials = channel_credentials(template.format(
        kind="rank" if is_rank else "node", node=identity.node_id,
        id=identity.rank if isinstance(identity, RankIdentity) else identity.node_id))
    return credentials


def jsonable(value: Any, *, floats: bool = False, path: str = "$") -> Any:
    """A JSON value: anything else as its text. Floats become strings, except with
    ``floats`` (parameters: they keep their JSON types, written in the RFC 8785 form
    when signed); NaN and the infinities, which are no JSON numbers, are then
    recorded as the strings ``NaN``, ``Infinity`` and ``-Infinity``, with a warning."""
    if isinstance(value, float):
        if not floats:
            return repr(value)
        if math.isfinite(value):
            return float(value)
        text = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        log.warning("slsa-dist: parameter %s is %s, which JSON has no number for: recorded "
                    "as the string %r", path, value, text)
        return text
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, floats=floats, path=f"{path}.{k}")
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, floats=floats, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # an IntEnum as the integer it is
    return str(value)


def _dumps(value: Mapping[str, Any] | None, *, floats: bool = False) -> str:
    return json.dumps(jsonable(dict(value or {}), floats=floats), sort_keys=True,
                      separators=(",", ":"), allow_nan=False)


class Agent:
    """Reports one sender's events (a rank, a DataLoader worker, or a node)."""

    def __init__(
        self,
        *,
        coordinator: str,
        job_id: str,
        identity: RankIdentity | NodeIdentity,
        spool_dir: str | os.PathLike[str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        batch_max: int = 1000,
        flush_interval: float = 0.05,
        queue_limit: int = 1_000_000,
        rpc_timeout: float = 30.0,
    ) -> None:
        # A rank on a node with a node relay (SLSA_RELAY, set by the node agent) reports
        # through it, over a Unix socket; the coordinator stays the one the spool names.
        relay = os.environ.get("SLSA_RELAY", "") if isinstance(identity, RankIdentity) else ""
        if credentials is None and not relay:
            credentials = tls_from_env(identity)
        self._target = relay or coordinator
        wire.require_tls_or_loopback(self._target, tls=credentials is not None)
        self.coordinator = coordinator
        self.job_id = job_id
        self.identity = identity
        self._credentials = credentials
        self._batch_max = batch_max
        self._interval = flush_interval
        self._limit = queue_limit
        self._timeout = rpc_timeout
        base = Path(spool_dir) if spool_dir is not None else Path(
            os.environ.get("SLSA_SPOOL_DIR", Path.home() / ".cache" / "slsa-dist" / "spool"))
        self._spool_dir = base / job_id
        # Paced: a rank calling the coordinator itself (a relay paces its node's ranks).
        self._rate = coordinator_rate() if isinstance(identity, RankIdentity) \
            and not relay and not identity.pid else 0.0
        self._reset()
        self._work: list[threading.Thread] = []
        self.refusals = 0  # calls the coordinator refused with a retry-after (load)
        _AGENTS.add(self)

    # -- state that a fork must not share ------------------------------------------------

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[pb.Event] = deque()
        self._unacked: deque[tuple[int, pb.Event]] = deque()
        self._next_seq = 1
        self._acked_through = 0
        self._dropped = 0
        self._lost = 0  # acknowledged by a coordinator that then lost its journal
        self._maybe_sent = 0  # the highest sequence number that may have reached it
        self._closing = False
        self._stopped = False
        self._flushing = 0
        self._errors: list[str] = []
        self._sender: str | None = None
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.CollectorStub | None = None
        self._thread: threading.Thread | None = None
        self._spool_loaded = False
        self._pid = os.getpid()
        # No call before this (time.monotonic()): this sender's slot (start_delay), then
        # what a loaded coordinator's pace-ms hint said.
        self._not_before = time.monotonic() + start_delay(
            self.identity.rank if isinstance(self.identity, RankIdentity) else 0, self._rate)

    def _after_fork(self) -> None:
        """In a forked child: new locks, no channel, no thread, a sender of its own."""
        if isinstance(self.identity, RankIdentity):
            self.identity = replace(self.identity, worker=os.getpid())
        self._reset()

    # -- recording (called from training code; never blocks on I/O) --------------------

    def _emit(self, event: pb.Event) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        with self._cond:
            if self._closing:
                raise TransportError("agent: expected an open agent, found it closed")
            if len(self._queue) + len(self._unacked) >= self._limit \
                    and event.WhichOneof("kind") != "completed":
                self._dropped += 1
                return
            self._queue.append(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slsa-agent",
                                                daemon=True)
                self._thread.start()
            # Wake the sender for the first event of a batch (it then waits the flush
            # interval for more) and for a full one; it never sleeps on events.
            if len(self._queue) == 1 or len(self._queue) >= self._batch_max:
                self._cond.notify_all()

    def record_shard(self, name: str, digest: Mapping[str, str], *, uri: str = "",
                     samples: int = 0, index_digest: str = "", epoch: int = 0,
                     sampler: Mapping[str, Any] | None = None) -> None:
        """A data shard (or part of one) this rank consumed."""
        self._emit(pb.Event(shard=pb.ShardConsumed(
            name=name, uri=uri, digest=dict(digest), samples=samples, index_digest=index_digest,
            epoch=epoch, sampler_json=_dumps(sampler))))

    def record_file(self, artifact: str, path: str, digest: Mapping[str, str], *, size: int = 0,
                    role: str = "checkpoint") -> None:
        """A file written into ``artifact`` (``path`` relative to the artifact's root)."""
        self._emit(pb.Event(file=pb.FileWritten(artifact=artifact, path=path,
                                                digest=dict(digest), size=size,
                                                role=_role(role))))

    def plan_artifact(self, artifact: str, files: Iterable[str], *,
                      role: str = "checkpoint") -> None:
        """The files ``artifact`` must contain, so missing ones are detected."""
        self._emit(pb.Event(planned=pb.ArtifactPlanned(artifact=artifact, files=sorted(files),
                                                       role=_role(role))))

    def record_dependency(self, kind: str, *, name: str = "", uri: str = "",
                          digest: Mapping[str, str] | None = None,
                          annotations: Mapping[str, Any] | None = None) -> None:
        """An input: ``code``, ``image``, ``package``, ``dataset`` or ``model``."""
        self._emit(pb.Event(dependency=pb.Dependency(
            kind=kind, name=name, uri=uri, digest=dict(digest or {}),
            annotations_json=_dumps(annotations) if annotations else "")))

    def set_parameters(self, *, external: Mapping[str, Any] | None = None,
                       internal: Mapping[str, Any] | None = None) -> None:
        """Parameters, in their JSON types (a float stays a number; NaN and the
        infinities become strings, see :func:`jsonable`), credentials redacted before
        they leave the process (the coordinator redacts again: ``redact_parameters``)."""
        from slsa_dist.model._statement import redact_parameters

        external = redact_parameters(external) if external else external
        internal = redact_parameters(internal) if internal else internal
        self._emit(pb.Event(parameters=pb.Parameters(
            external_json=_dumps(external, floats=True) if external else "",
            internal_json=_dumps(internal, floats=True) if internal else "")))

    def record_inventory(self, inventory: Mapping[str, Any]) -> None:
        self._emit(pb.Event(inventory=pb.Inventory(json=_dumps(inventory))))

    def record_evidence(self, kind: str, blob: bytes, *, nonce: bytes, fmt: str = "") -> None:
        self._emit(pb.Event(evidence=pb.Evidence(kind=kind, blob=blob, nonce=nonce, format=fmt)))

    def annotate(self, key: str, value: Any) -> None:
        self._emit(pb.Event(annotation=pb.Annotation(key=key, value_json=json.dumps(
            jsonable(value), sort_keys=True))))

    def record_attempt(self, *, attempt: int, run_id: str, ranks: Iterable[int], state: str,
                       exit_codes: Mapping[int, int] | None = None) -> None:
        self._emit(pb.Event(attempt=pb.AttemptRecord(
            attempt=attempt, run_id=run_id, ranks=sorted(ranks), state=state,
            exit_codes=dict(exit_codes or {}))))

    def record_capture_gap(self, what: str, why: str, *, allowed: bool = False) -> None:
        """Capture could not follow ``what`` (``why``): the provenance lists it, and is
        incomplete unless ``allowed`` (the job allows capture gaps)."""
        self._emit(pb.Event(capture_gap=pb.CaptureGap(what=what, why=why, allowed=allowed)))

    def complete(self, *, exit_code: int = 0, state: str = "SUCCEEDED") -> None:
        """The rank finished; this is its last event."""
        self._emit(pb.Event(completed=pb.RankCompleted(exit_code=exit_code, state=state)))

    def challenge(self, *, wait: float | None = None) -> bytes:
        """A fresh nonce from the coordinator for hardware evidence (blocking RPC).

        A coordinator that is not up yet is retried for ``wait`` seconds
        (``SLSA_CONNECT_WAIT``, default 30), backing off; then this gives up.

        Raises:
            TransportError: no answer within the window, or a refusal.
        """
        return self.challenge_tpm(None, wait=wait)[0]

    def challenge_tpm(self, tpm: tuple[bytes, bytes] | None, *,
                      wait: float | None = None) -> tuple[bytes, bytes]:
        """A fresh nonce, and with ``tpm`` (the node's EK certificate and enrolled AK's
        TPM2B_PUBLIC) the coordinator's credential challenge to that EK for that AK
        (empty when it made none). Retries and raises as :meth:`challenge`."""
        ek, ak = tpm or (b"", b"")
        window = wait if wait is not None else float(os.environ.get("SLSA_CONNECT_WAIT", "30"))
        deadline = time.monotonic() + window
        delay = 0.05  # a coordinator starting alongside answers within a second or so
        while True:
            try:
                self._connect()
                assert self._stub is not None
                self._register()
                reply = self._stub.Challenge(pb.ChallengeRequest(
                    job_id=self.job_id, node_id=self.identity.node_id, tpm_ek_certificate=ek,
                    tpm_ak_public=ak), timeout=self._timeout)
                return bytes(reply.nonce), bytes(reply.tpm_credential)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE \
                        or time.monotonic() + delay > deadline:
                    raise TransportError(f"coordinator {self.coordinator}: "
                                         f"{exc.code().name}: {exc.details()}") from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- flushing ---------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every recorded event is acknowledged (a paced first call, or the
        wait a loaded coordinator asked for, is cut short). False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None and not self._queue:
                return True
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._unacked:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, 0.1))
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, stop the sender thread and close the channel. Idempotent."""
        if self._pid != os.getpid():
            return True
        with self._lock:
            if self._closing:
                return not (self._queue or self._unacked)
        deadline = time.monotonic() + timeout
        for work in self._work:
            work.join(max(0.0, deadline - time.monotonic()))
        flushed = self.flush(max(0.1, deadline - time.monotonic()))
        leftover: list[pb.Event] = []
        with self._cond:
            self._closing = True
            if not flushed:
                # Give up sending, not the events: whatever is still queued goes to the
                # spool, where the next agent with this identity picks it up.
                self._stopped = True
                leftover, self._queue = list(self._queue), deque()
            self._cond.notify_all()
            thread = self._thread
        if not flushed and leftover:
            try:
                self._spool_append(leftover, 0)
            except OSError as exc:
                self._note(f"spool: {exc}")
        if not flushed:
            # Training goes on unrecorded; say so once, loudly, and where the events wait.
            print(f"slsa-dist: WARNING: {self.identity} could not deliver its events to the "
                  f"coordinator at {self.coordinator} (job {self.job_id}); they are kept in "
                  f"{self._spool_dir}: deliver them with `slsa-dist upload-spool "
                  f"{self._spool_dir}` once it is up",
                  file=sys.stderr, flush=True)
        if thread is not None:
            thread.join(timeout=max(1.0, timeout))
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        return flushed

    def stats(self) -> AgentStats:
        with self._lock:
            return AgentStats(queued=len(self._queue), unacked=len(self._unacked),
                              acked_through=self._acked_through, dropped=self._dropped,
                              errors=tuple(self._errors))

    # -- the sender thread ---------------------------------------------------------------

    def _connect(self) -> None:
        if self._channel is not None:
            return
        self._channel = wire.open_channel(self._target, credentials=self._credentials)
        self._stub = pb_grpc.CollectorStub(self._channel)

    def _register(self) -> None:
        if self._sender is not None:
            return
        assert self._stub is not None
        identity = self.identity
        if isinstance(identity, RankIdentity):
            reply, call = self._stub.RegisterRank.with_call(pb.RegisterRankRequest(
                job_id=self.job_id, rank=identity.rank, attempt=identity.attempt,
                world_size=identity.world_size, node_id=identity.node_id,
                run_id=identity.run_id, worker=identity.worker,
                pid=identity.pid or os.getpid()),
                timeout=self._timeout)
        else:
            reply, call = self._stub.RegisterNode.with_call(pb.RegisterNodeRequest(
                job_id=self.job_id, node_id=identity.node_id, hostname=identity.hostname,
                node_rank=identity.node_rank), timeout=self._timeout)
        self._pace_from(call)
        expected = int(reply.next_sequence)
        with self._lock:
            self._sender = reply.sender
            # The coordinator's count wins. Below it, events that may have been sent
            # (from the spool of an agent that died before the acknowledgement): it
            # holds them already. Events numbered here and never sent are renumbered
            # from its count instead (a new agent under an identity that reported
            # before, its spool emptied). Above it: the coordinator lost events it
            # had acknowledged (renumber down; the gap goes with the next event).
            while self._unacked and self._unacked[0][0] < expected \
                    and self._unacked[0][0] <= self._maybe_sent:
                self._unacked.popleft()
            first = self._unacked[0][0] if self._unacked else self._next_seq
            renumbered = first != expected
            if renumbered:
                if first > expected:
                    self._lost += first - expected
                self._renumber(expected)
            self._acked_through = expected - 1
        if renumbered:
            self._compact_spool()  # the spool holds sequence numbers: keep it in step

    def _renumber(self, start: int) -> None:
        """Shift unacked events so they start at ``start``; carry a pending gap on the first."""
        events = [e for _, e in self._unacked]
        if events and self._lost:
            events[0].lost_before += self._lost
            self._lost = 0
        self._unacked = deque((start + i, e) for i, e in enumerate(events))
        self._next_seq = start + len(events)
        self._maybe_sent = start - 1  # none of them went out under its new number

    def _spool(self) -> Spool:
        identity = asdict(self.identity)
        if isinstance(self.identity, RankIdentity):
            identity["pid"] = self.identity.pid or os.getpid()
        sender = {"job": self.job_id, "coordinator": self.coordinator,
                  "kind": "rank" if isinstance(self.identity, RankIdentity) else "node",
                  "identity": identity}
        return Spool(self._spool_dir / self.identity.spool_name(), sender=sender)

    def before_close(self, work: Callable[[], None]) -> None:
        """Run ``work`` on a thread now; :meth:`close` waits for it before flushing (a
        node's inventory and attestation, while its launcher starts the workers)."""
        def run() -> None:
            try:
                work()
            except Exception:  # recorded nothing more; the close still flushes the rest
                log.exception("agent %s: background work failed", self.identity)

        thread = threading.Thread(target=run, name="slsa-agent-work", daemon=True)
        self._work.append(thread)
        thread.start()

    def deliver_spool(self, timeout: float = 60.0) -> bool:
        """Send what an earlier agent with this identity left in the spool, and close.
        True when the coordinator acknowledged all of it."""
        self._load_spool()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slsa-agent",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return self.close(timeout=timeout)

    def _load_spool(self) -> None:
        """Pick up what an earlier agent with this identity left unacknowledged."""
        self._spool_loaded = True
        loaded = self._spool().read()
        if loaded:
            with self._lock:
                self._unacked.extendleft(reversed(loaded))
                self._next_seq = max(self._next_seq, loaded[-1][0] + 1)
                self._maybe_sent = max(self._maybe_sent, loaded[-1][0])
            log.info("agent %s: resending %d spooled event(s)", self.identity, len(loaded))

    def _spool_append(self, events: list[pb.Event], dropped: int) -> None:
        if dropped:
            events[0].dropped_before += dropped
        with self._lock:
            if self._lost:
                events[0].lost_before += self._lost
                self._lost = 0
            start = self._next_seq
            self._next_seq += len(events)
        records = [(start + offset, event) for offset, event in enumerate(events)]
        self._spool().append(records)
        with self._lock:
            self._unacked.extend(records)

    def _compact_spool(self) -> None:
        """Rewrite the spool with only unacknowledged events."""
        with self._lock:
            pending = list(self._unacked)
        self._spool().rewrite(pending)

    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                if self._stopped or (self._closing and not self._queue and not self._unacked):
                    return
                if not self._queue and not self._unacked:
                    self._cond.wait()
                    continue
                if len(self._queue) < self._batch_max and not self._flushing \
                        and not self._closing and not self._unacked:
                    self._cond.wait(self._interval)
                drained = list(self._queue)
                self._queue.clear()
                dropped = 0
                if drained:  # the count rides on an event; with none it waits for one
                    dropped, self._dropped = self._dropped, 0
            try:
                if not self._spool_loaded:
                    self._load_spool()
                if drained:
                    self._spool_append(drained, dropped)
                if self._paced():
                    continue  # spool what comes meanwhile; call once the slot has come
                self._connect()
                if self._sender is None:
                    self._register()
                    continue  # the report waits for the pace its answer may carry
                if self._send_batch():
                    backoff = 0.05
            except grpc.RpcError as exc:
                if wire.wants_resync(exc):
                    self._resync(f"{exc.code().name}: {exc.details()}")
                elif exc.code() not in _RETRYABLE:
                    self._give_up(f"{exc.code().name}: {exc.details()}")
                # A coordinator under load says when to come back: a refusal, not a
                # failure (nothing was done; the backoff does not grow). Otherwise back off.
                after = wire.retry_after(exc)
                if after is not None:
                    self.refusals += 1
                    time.sleep(retry_delay(max(after, 0.05)))
                    continue
                time.sleep(retry_delay(backoff))
                backoff = min(backoff * 2, 2.0)
            except OSError as exc:  # spool trouble: keep events in memory and retry
                self._note(f"spool: {exc}")
                time.sleep(retry_delay(backoff))
                backoff = min(backoff * 2, 2.0)

    def _send_batch(self) -> bool:
        assert self._stub is not None
        with self._lock:
            batch = list(self._unacked)[: self._batch_max]
            if batch:
                self._maybe_sent = max(self._maybe_sent, batch[-1][0])
        if not batch:
            return True
        reply, call = self._stub.Report.with_call(pb.ReportRequest(
            job_id=self.job_id, sender=self._sender, first_sequence=batch[0][0],
            events=[event for _, event in batch]), timeout=self._timeout)
        self._pace_from(call)
        with self._cond:
            self._acked_through = max(self._acked_through, reply.acked_through)
            while self._unacked and self._unacked[0][0] <= self._acked_through:
                self._unacked.popleft()
            everything_acked = not self._unacked
            self._cond.notify_all()
        if everything_acked or len(batch) >= self._batch_max:
            self._compact_spool()
        return True

    def _paced(self) -> bool:
        """True while this sender's next call must wait (its start slot, or a loaded
        coordinator's pace): waits for it, woken early by a new event (to spool it),
        a flush or a close, which cut the wait short."""
        with self._cond:
            remaining = self._not_before - time.monotonic()
            if remaining <= 0 or self._flushing or self._closing:
                return False
            self._cond.wait(remaining)
            return True

    def _pace_from(self, call: Any) -> None:
        """Wait before the next call as long as the answer's pace-ms trailer says (with
        jitter, as a retry-after), at most :data:`MAX_PACE`."""
        after = wire.pace(call.trailing_metadata())
        if after is not None:
            with self._lock:
                self._not_before = max(self._not_before, time.monotonic()
                                       + retry_delay(min(after, MAX_PACE)))

    def _resync(self, why: str) -> None:
        """The coordinator lost track of us: register again; nothing held is dropped."""
        with self._lock:
            self._sender = None
        log.warning("agent %s: registering again: %s", self.identity, why)

    def _give_up(self, why: str) -> None:
        """A batch the coordinator refuses for good: drop it, count it, say why."""
        with self._cond:
            count = min(len(self._unacked), self._batch_max)
            lost = [self._unacked.popleft() for _ in range(count)]
            self._dropped += len(lost)
            self._errors.append(why)
            self._cond.notify_all()
        log.error("agent %s: coordinator refused %d event(s): %s", self.identity, len(lost), why)
        self._compact_spool()

    def _note(self, why: str) -> None:
        with self._lock:
            self._errors.append(why)


def retry_delay(backoff: float, draw: Callable[[], float] = random.random) -> float:
    """How long to wait before a retry: between half of ``backoff`` and all of it, drawn
    at random, so agents refused together (a coordinator restart, a partition that
    heals) do not retry in step and arrive in waves."""
    return backoff * (0.5 + draw() / 2)


def coordinator_rate(environ: Mapping[str, str] | None = None) -> float:
    """The calls per second the coordinator serves, from ``SLSA_COORDINATOR_RATE``
    (:data:`DEFAULT_RATE` when unset; 0: no pacing). A value that is no such number is
    not the training's problem: a warning, and the default."""
    text = (os.environ if environ is None else environ).get(RATE_ENV, "").strip()
    if not text:
        return DEFAULT_RATE
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate < 0:
        log.warning("slsa-dist: %s: expected calls per second (a number >= 0; 0 for no "
                    "pacing), found %r; using %g", RATE_ENV, text, DEFAULT_RATE)
        return DEFAULT_RATE
    return rate


def start_delay(rank: int, rate: float, draw: Callable[[], float] = random.random) -> float:
    """How long after it starts a rank reporting straight to a coordinator that serves
    ``rate`` calls/s makes its first call: its slot, ``rank`` starts of
    :data:`CALLS_PER_START` calls each, at a random point within it (ranks started
    together then reach the coordinator spread at the rate it serves). 0 without a rate."""
    if rate <= 0:
        return 0.0
    return (max(rank, 0) + draw()) * CALLS_PER_START / rate


def _role(role: str) -> pb.ArtifactRole:
    try:
        return _ROLES[role]
    except KeyError:
        raise InputError(f"role: expected one of {sorted(_ROLES)}, found {role!r}") from None


_AGENTS: weakref.WeakSet[Agent] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for agent in list(_AGENTS):
        agent._after_fork()  # noqa: SLF001 -- module-level hook for the class's own state


def _flush_all_at_exit() -> None:
    for agent in list(_AGENTS):
        agent.close(timeout=float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30")))


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)
