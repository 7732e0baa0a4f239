"""The coordinator: one per job, a ``grpc.aio`` service around the merge.

It accepts registrations and event batches from rank and node agents,
journals every accepted message (SQLite WAL, group commit) before it
acknowledges it, and when the job is over merges everything into ONE SLSA
Provenance, signs it (DSSE) and writes ``<out>/<job>.intoto.jsonl``.

The servicer is a thin shell: every rule lives in
``slsa_dist.collect._merge.JobState`` (pure, no I/O: ingest, state, assembly). A restarted
coordinator replays its journal into a fresh state and carries on.

Finalization happens when every rank's latest attempt completed (and every
registered node reported its final attempt state, or ``settle`` seconds
passed: a node agent that died must not hold the job open forever), on a
``Finalize`` RPC (``slsa-dist finalize``), or after ``idle_timeout`` seconds
without a message. Missing ranks and files are
recorded in the provenance, never hidden.

>>> # coordinator = Coordinator(job_id="job-1", signer=load_signer("k.key"), out_dir="out")
>>> # port = await coordinator.start("127.0.0.1:0"); await coordinator.wait_finalized()
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import gc
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc import aio

from slsa_dist import __version__
from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist._pb.v1 import journal_pb2
from slsa_dist.attest._verdict import EvidenceVerifier
from slsa_dist.collect import _authority as authority
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._authority import REPLAY, Principal
from slsa_dist.collect._journal import GroupCommitter, Journal, JournalFailed
from slsa_dist.collect._merge import DuplicateClaimError, JobState, Limits
from slsa_dist.errors import InputError, SenderError, SigningError
from slsa_dist.model._ledger import LEDGER_ABOVE, write_ledger
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import DEFAULT_BUILDER_ID
from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from slsa_dist.sign._formats import DEFAULT_FORMAT, FORMATS, write_bundles
from slsa_dist.sign._keys import Signer

if TYPE_CHECKING:
    from slsa_dist.sign._ca import Identity

__all__ = ["LEDGER_ABOVE", "Coordinator", "CoordinatorConfig", "CoordinatorThread",
           "FinalResult", "Limits"]

log = logging.getLogger(__name__)

# Requests per second per peer (identity; on loopback, address and node), with a burst:
# an agent sends a batch every 50 ms at most, and 1,024 ranks registering at once
# over one relay connection fit in the burst; a runaway client is slowed, not served.
RATE_PER_SECOND = 2_000
RATE_BURST = 4_000
# What a refused caller is told to wait before retrying (it adds jitter); callers refused
# for memory are told when their turn comes, up to the longest wait below.
RETRY_AFTER_MS = wire.RETRY_AFTER_MS
MAX_RETRY_AFTER_MS = 15_000
# Request bytes (as received) held by calls being applied or waiting for their journal
# commit, and set aside for relays' calls to come (Reserve): a relay that reserved waits
# for room before it sends; a call that did not is refused with retry-after when there
# is none (gRPC has received and parsed it by then: only reserving bounds what
# arrives). A call in progress takes ~5x its wire size in memory (the bytes received,
# the parsed message, its journal entry): 32 MiB is ~160 MiB, and ~450 relay batches of
# 8 ranks in progress keep the journal's group commits full.
HELD_BYTES = 32 << 20
# How long room granted to a relay waits for its call.
GRANT_SECONDS = 5.0
# Admission (issue 27): calls being handled at once, at most. Past it, or when a call
# would wait longer than its own deadline allows behind the calls already admitted (at
# the rate calls were completed in the last second), it is refused at once with
# RESOURCE_EXHAUSTED and a retry-after that spreads the refused over the time it takes
# to serve them, before any work: on the direct path (every rank its own caller, as Ray
# workers without a node relay) calls otherwise wait in the queue past their deadline,
# are resent, and are then handled twice.
MAX_CALLS = 4096
# A call is admitted only if the calls ahead of it are served within this share of the
# time its deadline leaves (the rest is its own handling and the reply's way back).
DEADLINE_SHARE = 0.5
# What a call refused by admission may be told to wait, at most: the refused of a burst
# of 65,536 ranks come back spread over a minute instead of all again after 15 s.
MAX_ADMISSION_WAIT_MS = 60_000
# Pacing (issue 27): when the calls ahead of a new one would take longer than this to
# serve, an answered call's reply carries a pace-ms trailer, the next slot of the same
# virtual queue as refusals, so its caller waits for it before calling again instead of
# queueing its next call behind the others; at most MAX_PACE_MS (agents bound it too).
PACE_AFTER_S = 1.0
MAX_PACE_MS = 5_000
# The size of the request being handled, noted by its deserializer: gRPC's asyncio server
# deserializes a request in the task that then runs its handler.
_REQUEST_BYTES: contextvars.ContextVar[int] = contextvars.ContextVar("request_bytes",
                                                                      default=0)


# JournalEntry.batch, appended to an entry as its own bytes.
_BATCH_FIELD = 5


def pending_limit(world_size: int) -> int:
    """Calls a coordinator holds at once; beyond it gRPC refuses new ones at once with
    RESOURCE_EXHAUSTED (the agent backs off, with jitter), instead of letting them queue
    until they are CANCELLED or outlive their deadline and are resent while still being
    processed. Sized for the job: each rank, node agent and node relay has at most one
    call in flight."""
    return max(1024, world_size + world_size // 8 + 64)

T = TypeVar("T")


_TPM_IDENTITY_MAX = 8 * 1024  # an EK certificate is 1-2 KiB, an AK public area ~100 bytes


def _tpm_challenge(req: pb.ChallengeRequest) -> tuple[bytes, bytes]:
    """(the record to journal and put in the bundle, the credential for the node) when the
    node sent its EK certificate and AK public area; (b"", b"") when it sent neither.
    A challenge that cannot be made is recorded with the reason, and none is sent."""
    from slsa_dist.attest._credential import challenge

    ek, ak = req.tpm_ek_certificate, req.tpm_ak_public
    if not ek and not ak:
        return b"", b""
    if not ek or not ak or len(ek) > _TPM_IDENTITY_MAX or len(ak) > _TPM_IDENTITY_MAX:
        reason = (f"expected an EK certificate and an AK public area of at most "
                  f"{_TPM_IDENTITY_MAX} bytes each, found {len(ek)} and {len(ak)}")
    else:
        try:
            return challenge(ek, ak)
        except InputError as exc:
            reason = str(exc)
    return json.dumps({"error": reason[:300]}, sort_keys=True).encode(), b""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _from_nanos(nanos: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(nanos / 1e9, tz=dt.timezone.utc)


@dataclass(frozen=True)
class FinalResult:
    bundle: Path
    statement_sha256: str
    complete: bool  # the completeness record's verdict: no gap of any kind
    missing_ranks: tuple[int, ...]
    outputs_recorded: bool = True



def _journal_key_file(journal: Path) -> bytes:
    """The journal's MAC key from ``<journal>.key`` (made once: 32 random bytes, 0600)."""
    path = journal.with_name(journal.name + ".key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != 32:
            raise InputError(f"journal key {path}: expected 32 bytes, found {len(key)}") \
                from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class RecordFile:
    """Sealed rank records (``merge.RecordStore``) in a file beside the journal, 0600:
    each appended once, read back by offset when the ledger is written (from the page
    cache, as a rule). At 65,536 ranks that is ~235 MiB the coordinator does not hold.
    Derived data: a restarted coordinator rebuilds it from its journal.

    The file is not trusted: each record's SHA-256 stays in memory with its handle
    (32 bytes a rank, 2 MiB at 65,536) and the bytes read back must match it, so a
    record changed on disk never reaches the signature (issue 25 F9)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._end = 0

    def put(self, data: bytes) -> tuple[int, int, bytes]:
        # At an explicit offset: a write that fails half-way (disk full) leaves the end
        # where it was, and the next record writes over the half.
        view, offset = memoryview(data), self._end
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        handle = (self._end, len(data), hashlib.sha256(data).digest())
        self._end = offset
        return handle

    def get(self, handle: tuple[int, int, bytes]) -> bytes:
        """The record's bytes, as written.

        Raises:
            InputError: the file no longer holds them (changed or cut outside the
                coordinator): restart it, and it rebuilds the file from its journal.
        """
        offset, length, digest = handle
        data = os.pread(self._fd, length, offset)
        if len(data) != length or not hmac.compare_digest(hashlib.sha256(data).digest(),
                                                           digest):
            raise InputError(f"{self.path}: expected the record written at {offset} "
                             f"({length} bytes, sha256 {digest.hex()[:16]}...), found other "
                             "bytes (the file was changed outside the coordinator); "
                             "restart the coordinator to rebuild it from its journal")
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True, kw_only=True)
class CoordinatorConfig:
    """What a job's coordinator is told: checked when made, so a config that exists is valid.

    Args:
        job_id: the job's name (no ``/``): names the bundle, journal and ledger files.
        out_dir: where the bundle (and ledger) are written.
        world_size: ranks the job runs; ``min_world_size`` makes it elastic.
        journal_path: the journal (default ``<out>/<job>.journal.sqlite``).
        builder_id: ``runDetails.builder.id``, by deployment mode (docs/builder.md).
        idle_timeout: finalize after this many seconds without a message (None: never).
        settle: seconds to wait, after every known rank completed, for late ones.
        limits: per-job bounds (world size, events, bytes).
        internal_parameters: what the platform chose, merged over what nodes report.
        journal_max_bytes: the journal's size bound.
        formats: bundle formats to write (names in :data:`slsa_dist.sign.FORMATS`);
            the first is the result's bundle.
        ledger_above: ranks above which records go to a ledger beside the bundle.
        held_bytes: request bytes held and reserved at once (flow control, ADR 0012).
        max_calls: calls handled at once (admission, :data:`MAX_CALLS`); beyond it, or
            when a call's deadline would pass behind those admitted, it is refused at
            once with a retry-after hint.
    """

    job_id: str
    out_dir: Path
    world_size: int
    min_world_size: int | None = None
    journal_path: Path | None = None
    builder_id: str = DEFAULT_BUILDER_ID
    idle_timeout: float | None = None
    settle: float = 30.0
    limits: Limits | None = None
    internal_parameters: Mapping[str, Any] = field(default_factory=dict)
    journal_max_bytes: int | None = None
    formats: tuple[str, ...] = (DEFAULT_FORMAT,)
    ledger_above: int = LEDGER_ABOVE
    held_bytes: int = HELD_BYTES
    max_calls: int = MAX_CALLS

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.journal_path is not None:
            object.__setattr__(self, "journal_path", Path(self.journal_path))
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            raise InputError(f"bundle format: expected one or more of {list(FORMATS)}, "
                             f"found {unknown or 'none'}")
        if self.max_calls < 1:
            raise InputError(f"max calls: expected 1 or more calls handled at once, found "
                             f"{self.max_calls}")
        if self.ledger_above < 0:
            raise InputError(f"ledger threshold: expected 0 or more ranks, found "
                             f"{self.ledger_above}")
        job_id = self.job_id
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise InputError(f"job id: expected a non-empty name without '/', found {job_id!r}")


class Coordinator:
    """One job's coordinator: its :class:`CoordinatorConfig`, the key it signs with, and
    (for tests) the evidence verifier it appraises with."""

    def __init__(self, config: CoordinatorConfig, *, signer: Signer,
                 evidence_verifier: EvidenceVerifier | None = None) -> None:
        self.config = config
        self._formats = config.formats
        self._ledger_above = config.ledger_above
        self.room = _Room(config.held_bytes)  # request bytes held and reserved (HELD_BYTES)
        self._backlog = _Backlog(config.held_bytes)
        self.admission = _Admission(config.max_calls)
        job_id = self.job_id = config.job_id
        self._signer = signer
        self.out_dir = config.out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = config.journal_path or self.out_dir / f"{job_id}.journal.sqlite"
        self._builder_id = config.builder_id
        self._idle_timeout = config.idle_timeout
        self._settle = config.settle
        # What the platform chose, merged over what node agents report (docs/buildtype.md).
        self.internal_parameters = dict(config.internal_parameters)
        if evidence_verifier is None:
            from slsa_dist.attest._registry import verify_evidence

            evidence_verifier = verify_evidence
        # The journal's MAC key: derived from the signing key, so only the coordinator
        # can extend the journal in a way its replay accepts. A key in an HSM derives
        # nothing outside it: then a random key in a 0600 file beside the journal.
        try:
            mac_key = signer.derive_secret("slsa-dist journal mac v1")
        except SigningError:
            mac_key = _journal_key_file(self.journal_path)
        self._journal = Journal(self.journal_path, job_id=job_id,
                                max_bytes=config.journal_max_bytes, key=mac_key)
        self._records = RecordFile(self.journal_path.with_name(
            self.journal_path.name + ".records"))
        self.state = JobState(job_id=job_id, world_size=config.world_size,
                              run_id=self._journal.run_id, limits=config.limits,
                              evidence_verifier=evidence_verifier,
                              min_world_size=config.min_world_size, records=self._records)
        try:
            self.replayed = self._replay()
        except BaseException:  # a journal that does not replay: nothing is left open
            self._records.close()
            raise
        self._committer = GroupCommitter(self._journal)
        self._server: aio.Server | None = None
        self._final: FinalResult | None = None
        self._finalizing: asyncio.Lock | None = None
        self._finalized_event: asyncio.Event | None = None
        self._last_message = time.monotonic()
        self._all_done_since: float | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None
        self.tls = False
        self._buckets: dict[str, tuple[float, float]] = {}  # peer -> (tokens, last refill)
        self.calls = 0  # RPCs received, and refused by the rate limit (for benchmarks)
        self.refused = 0  # refused for rate, memory or admission
        self.reserved_calls = 0  # Reserve calls granted

    # -- journal replay ---------------------------------------------------------------

    def _replay(self) -> int:
        """Feed every journaled entry back into the state machine."""
        count = 0
        for data in self._journal.entries():
            entry = journal_pb2.JournalEntry.FromString(data)
            now = _from_nanos(entry.time_unix_nanos)
            which = entry.WhichOneof("entry")
            # Each entry was authorized and bounded when accepted, and is MAC-chained
            # since: the replay skips those checks, never the state's own rules.
            if which == "challenge":
                self.state.challenge(self.job_id, entry.challenge.node_id,
                                     entry.challenge.nonce, now, principal=REPLAY,
                                     tpm_challenge=entry.challenge.tpm_challenge)
            elif which == "node":
                self.state.register_node(entry.node, now, peer=entry.peer_address,
                                         principal=REPLAY)
            elif which == "rank":
                # a second claimant's registration: refused again, and kept again
                with contextlib.suppress(DuplicateClaimError):
                    self.state.register_rank(entry.rank, now, relayed_by=entry.relayed_by,
                                             principal=REPLAY)
            elif which == "batch":
                self.state.accept(entry.batch, now, principal=REPLAY)
            elif which == "finalize":
                self.state.finalize(entry.finalize.job_id, entry.finalize.reason, now)
            count += 1
        return count

    @staticmethod
    def _entry(now: dt.datetime, **fields: Any) -> bytes:
        nanos = int(now.timestamp() * 1e9)
        batch = fields.pop("batch", None)
        entry = journal_pb2.JournalEntry(time_unix_nanos=nanos, **fields).SerializeToString()
        if batch is not None:
            # The batch field appended as its own bytes (protobuf merges concatenated
            # fields): one serialization of the events instead of a copy and another.
            entry += wire.wire_field(_BATCH_FIELD, batch.SerializeToString())
        return entry

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, listen: str, *, tls: str | os.PathLike[str] | None = None) -> int:
        """Serve on ``listen`` (``host:port``; port 0 picks one). Returns the port.

        With ``tls`` (a directory holding ``cert.pem``, ``key.pem`` and the job's
        ``ca.pem``, from ``slsa-dist ca issue --role coordinator``) every peer must
        present a certificate from the job CA and may act only as the identity it
        names. Without it the server is plaintext, on loopback only, and refuses
        peers that are not on loopback.
        """
        wire.check_listen(listen)
        wire.check_port_free(listen)
        credentials = None
        if tls is not None:
            from slsa_dist.sign._ca import server_credentials

            credentials = server_credentials(tls)
        self.tls = credentials is not None
        wire.require_tls_or_loopback(listen, tls=credentials is not None, what="listen")
        self._finalizing = asyncio.Lock()
        self._finalized_event = asyncio.Event()
        # Calls wait in gRPC's own queue until the Python loop takes them; past its
        # default bound (1,000) gRPC cancels them. Both bounds are sized for the job.
        limit = pending_limit(self.state.world_size)
        self._server = aio.server(options=(
            *wire.SERVER_OPTIONS, ("grpc.server.max_pending_requests", limit),
            ("grpc.server.max_pending_requests_hard_limit", limit)),
            maximum_concurrent_rpcs=limit)
        self._server.add_generic_rpc_handlers((_handlers(_Servicer(self)),))
        try:
            if credentials is None:
                port = self._server.add_insecure_port(listen)
            else:
                port = self._server.add_secure_port(listen, credentials)
        except RuntimeError:  # grpc's own words: "Failed to bind to address ..."
            port = 0
        if port == 0:
            raise InputError(f"listen: expected a free port to bind at {listen!r}, found it "
                             "in use or not bindable (another coordinator?)")
        await self._server.start()
        self._watch = asyncio.get_running_loop().create_task(self._watchdog())
        self._lag = asyncio.get_running_loop().create_task(self.admission.watch_lag())
        if self.state.finalized:
            await self.finalize("replayed-finalized")
        return port

    async def wait_finalized(self) -> FinalResult:
        assert self._finalized_event is not None, "start() first"
        await self._finalized_event.wait()
        assert self._final is not None
        return self._final

    async def stop(self, grace: float = 1.0) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._lag is not None:
            self._lag.cancel()
        if self._server is not None:
            await self._server.stop(grace)
        self._committer.close()
        self._records.close()

    async def _watchdog(self) -> None:
        while not self.state.finalized:
            await asyncio.sleep(0.2)
            if self._committer.failure is not None:
                continue  # never finalize from a state that is ahead of the journal
            now = time.monotonic()
            if self._all_done_since is not None and now - self._all_done_since >= self._settle:
                await self._finalize_quietly("all-ranks-complete")
            elif self._idle_timeout is not None and now - self._last_message > self._idle_timeout:
                await self._finalize_quietly("timeout")

    async def _finalize_quietly(self, reason: str) -> None:
        try:
            await self.finalize(reason)
        except Exception:  # the watchdog must survive; the RPC path reports errors
            log.exception("automatic finalization (%s) failed", reason)

    def _check_done(self) -> None:
        """Arm finalization once every rank's latest attempt ended (succeeded or not);
        finalize now if every node reported its final state too. A new attempt disarms."""
        if not self.state.all_ranks_ended():
            self._all_done_since = None
            return
        if self._all_done_since is None:
            self._all_done_since = time.monotonic()
        if self.state.nodes_finished():
            self._all_done_since = time.monotonic() - self._settle

    async def finalize(self, reason: str) -> FinalResult:
        """Close the job, merge, sign and write the bundle (idempotent)."""
        assert self._finalizing is not None, "start() first"
        assert self._finalized_event is not None, "start() first"
        async with self._finalizing:
            if self._final is not None:
                return self._final
            now = _now()
            if not self.state.finalized:
                self.state.finalize(self.job_id, reason, now)
                await self._committer.write(self._entry(
                    now, finalize=pb.FinalizeRequest(job_id=self.job_id, reason=reason)))
            self._final = await asyncio.to_thread(self._write_bundle)
            self._finalized_event.set()
            log.info("finalized %s: %s", self.job_id, self._final.bundle)
            return self._final

    def _write_bundle(self) -> FinalResult:
        # What finalizing allocates is short-lived; the job's state is not, and the
        # collector would walk all of it again and again (a fifth of finalize at 32k
        # ranks): set it aside until the bundle is written.
        gc.freeze()
        try:
            return self._merge_and_sign()
        finally:
            gc.unfreeze()

    def _merge_and_sign(self) -> FinalResult:
        ledger = None
        if self.state.rank_count > self._ledger_above:
            ledger = partial(write_ledger, self.out_dir / f"{self.job_id}.ledger.jsonl",
                             # records hold no float: merge._json_object refused every
                             # float but a parameter's, and parameters are no record
                             floats_refused=True)
        statement = self.state.statement(
            builder_id=self._builder_id, builder_version={"slsa-dist": __version__},
            internal=self.internal_parameters, ledger=ledger)
        payload = statement.to_bytes()  # serialized once: the bytes signed are these
        envelope = sign_envelope(payload, payload_type=IN_TOTO_PAYLOAD_TYPE,
                                 signers=[self._signer])
        bundle = write_bundles(self.out_dir, self.job_id, envelope, self._formats)[0]
        completeness = Provenance.from_statement(statement).completeness()  # inline always
        assert completeness is not None  # the merge always writes one
        return FinalResult(bundle=bundle, statement_sha256=hashlib.sha256(payload).hexdigest(),
                           complete=completeness.complete,
                           missing_ranks=completeness.missing_ranks,
                           outputs_recorded=completeness.outputs_recorded is not False)

    # -- RPC bodies (called by the servicer) -------------------------------------------

    def allow(self, peer: str, cost: int = 1) -> bool:
        """Token bucket per peer: False when ``peer`` exceeds its request rate. A call
        costs one token per request it carries (a Relay call, one per item)."""
        now = time.monotonic()
        tokens, last = self._buckets.get(peer, (float(RATE_BURST), now))
        tokens = min(float(RATE_BURST), tokens + (now - last) * RATE_PER_SECOND)
        if tokens < max(cost, 1):
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - max(cost, 1), now)
        return True

    def hold(self, size: int, node: str = "") -> None:
        """Count a call's request bytes as held until :meth:`release`; refuses (retry
        after) when there is no room and it is not ``node``'s relay call with room
        reserved."""
        if not self.room.hold(node, size):
            self.refused += 1
            wait = self._backlog.refuse(size, time.monotonic())
            room = self.room
            raise _OverloadedError(f"memory: expected at most {room.limit >> 20} MiB of "
                                   f"requests in progress, found "
                                   f"{(room.held + room.reserved) >> 20} MiB held or reserved "
                                   f"and {size >> 10} KiB more; retry after {wait} ms",
                                   retry_after_ms=wait)

    def admit(self, time_remaining: float | None) -> None:
        """Count a call as being handled until ``admission.done``; refuses it (retry after)
        when :data:`MAX_CALLS` are, or when those ahead of it would outlast its deadline."""
        wait = self.admission.admit(time.monotonic(), time_remaining)
        if wait is not None:
            self.refused += 1
            admission = self.admission
            raise _OverloadedError(f"load: expected a call to be served within its deadline "
                                   f"(at most {admission.limit} at once), found "
                                   f"{admission.in_flight} in progress at "
                                   f"{admission.rate:,.0f}/s; retry after {wait} ms",
                                   retry_after_ms=wait)

    def release(self, size: int) -> None:
        self.room.release(size)
        self._backlog.released(size, time.monotonic())

    async def reserve(self, req: pb.ReserveRequest,
                      principal: Principal = authority.OPERATOR) -> pb.ReserveResponse:
        """Answered once the coordinator can hold ``req.bytes`` more (in the order
        asked); the node's next call is then not refused for memory."""
        self._check_job(req.job_id)
        if not req.node_id:
            raise SenderError("reserve: expected the relaying node's id, found ''",
                              code="INVALID_ARGUMENT")
        authority.authorize_node(principal, req.node_id, "reserve")
        size = min(req.bytes, self.room.limit)
        await self.room.reserve(req.node_id, size)
        self.reserved_calls += 1
        return pb.ReserveResponse(granted_bytes=size, valid_ms=int(GRANT_SECONDS * 1000))

    def touch(self) -> None:
        """Note that a message arrived (for the idle timeout)."""
        self._last_message = time.monotonic()

    @property
    def journal_failure(self) -> BaseException | None:
        """Why the journal stopped accepting writes, or None while it works."""
        return self._committer.failure

    async def _durable(self, entry: bytes | list[bytes] | None) -> None:
        await self._committer.write(entry)

    async def challenge(self, req: pb.ChallengeRequest, principal: Principal
                        ) -> pb.ChallengeResponse:
        now = _now()
        nonce = secrets.token_bytes(32)
        record, credential = _tpm_challenge(req)
        self.state.challenge(req.job_id, req.node_id, nonce, now, principal=principal,
                             tpm_challenge=record)
        await self._durable(self._entry(now, challenge=journal_pb2.ChallengeIssued(
            node_id=req.node_id, nonce=nonce, tpm_challenge=record)))
        return pb.ChallengeResponse(nonce=nonce, tpm_credential=credential)

    async def register_node(self, req: pb.RegisterNodeRequest, principal: Principal, *,
                            peer: str = "") -> pb.RegisterResponse:
        now = _now()
        registered = self.state.register_node(req, now, peer=peer, principal=principal)
        await self._durable(self._entry(now, node=req, peer_address=peer)
                            if registered.new else None)
        return pb.RegisterResponse(sender=registered.sender,
                                   next_sequence=registered.next_sequence)

    async def register_rank(self, req: pb.RegisterRankRequest, principal: Principal
                            ) -> pb.RegisterResponse:
        now = _now()
        try:
            registered = self.state.register_rank(req, now, principal=principal)
        except DuplicateClaimError as exc:  # refused; the conflict it is, made durable
            await self._durable(self._entry(now, rank=req) if exc.new else None)
            raise
        await self._durable(self._entry(now, rank=req) if registered.new else None)
        return pb.RegisterResponse(sender=registered.sender,
                                   next_sequence=registered.next_sequence)

    def _accept(self, req: pb.ReportRequest, now: dt.datetime, principal: Principal
                ) -> tuple[bytes | None, pb.ReportResponse]:
        """Apply a batch; the journal entry for what was new, and the reply to send once
        that entry is durable."""
        start, duplicates = self.state.accept(req, now, principal=principal)
        entry = None
        if start < len(req.events):
            tail = req if start == 0 else pb.ReportRequest(
                job_id=req.job_id, sender=req.sender, first_sequence=req.first_sequence + start,
                events=req.events[start:])
            entry = self._entry(now, batch=tail)
        return entry, pb.ReportResponse(acked_through=self.state.acked_through(req.sender),
                                        duplicates=duplicates)

    async def accept_batch(self, req: pb.ReportRequest, principal: Principal
                           ) -> pb.ReportResponse:
        entry, reply = self._accept(req, _now(), principal)
        await self._durable(entry)
        self._check_done()
        return reply

    async def relay(self, req: pb.RelayRequest, principal: Principal | None = None
                    ) -> pb.RelayResponse:
        """A node relay's items, each applied as the direct call would be, journaled in
        one commit; answered once all of it is durable, one result per item. The relay
        speaks as its node (ADR 0010): each item is authorized as that node's call."""
        self._check_job(req.job_id)
        if not req.node_id:
            raise SenderError("relay: expected the relaying node's id, found ''",
                              code="INVALID_ARGUMENT")
        authority.authorize_node(principal or Principal.node(req.node_id), req.node_id,
                                 "relay")
        limit = self.state.limits.max_relay_items
        if len(req.items) > limit:  # refused whole, before any of it is applied
            raise SenderError(f"relay: expected at most {limit} items per call, found "
                              f"{len(req.items)}", code="RESOURCE_EXHAUSTED")
        now = _now()
        entries: list[bytes] = []
        results: list[pb.RelayResult] = []
        for index, item in enumerate(req.items):
            try:
                results.append(self._relay_item(req.node_id, index, item, now, entries))
            except SenderError as exc:
                code, detail = wire.status_of(exc)
                results.append(pb.RelayResult(code=code.value[0], detail=detail,
                                              resync=exc.resync))
        await self._durable(entries)
        self._check_done()
        return pb.RelayResponse(results=results)

    def _relay_item(self, node: str, index: int, item: pb.RelayItem, now: dt.datetime,
                    entries: list[bytes]) -> pb.RelayResult:
        which = item.WhichOneof("call")
        relay = Principal.node(node)
        if which == "register":
            try:
                registered = self.state.register_rank(item.register, now, relayed_by=node,
                                                      principal=relay)
            except DuplicateClaimError as exc:  # refused; the conflict it is, journaled
                if exc.new:
                    entries.append(self._entry(now, rank=item.register, relayed_by=node))
                raise
            if registered.new:
                entries.append(self._entry(now, rank=item.register, relayed_by=node))
            return pb.RelayResult(registered=pb.RegisterResponse(
                sender=registered.sender, next_sequence=registered.next_sequence))
        if which == "report":
            owner = self.state.sender_node(item.report.sender)
            if owner is not None and owner != node:
                raise SenderError(f"relay item {index}: expected a sender of node {node!r}, "
                                  f"found {item.report.sender} of node {owner!r}",
                                  code="PERMISSION_DENIED")
            entry, reply = self._accept(item.report, now, relay)
            if entry is not None:
                entries.append(entry)
            return pb.RelayResult(reported=reply)
        raise SenderError(f"relay item {index}: expected a registration or a report, found "
                          "neither", code="INVALID_ARGUMENT")

    def _check_job(self, job_id: str) -> None:
        if job_id != self.job_id:
            raise SenderError(f"job id: expected {self.job_id!r}, found {job_id!r}",
                              code="NOT_FOUND")

    async def finalize_rpc(self, req: pb.FinalizeRequest,
                           principal: Principal = authority.OPERATOR) -> pb.FinalizeResponse:
        self._check_job(req.job_id)
        authority.authorize_finalize(principal)
        result = await self.finalize(req.reason or "request")
        return pb.FinalizeResponse(bundle_path=str(result.bundle),
                                   statement_sha256=result.statement_sha256,
                                   complete=result.complete,
                                   missing_ranks=list(result.missing_ranks))

    async def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        self._check_job(req.job_id)
        state = "finalized" if self._final else ("degraded" if self._committer.failure
                                                 else "collecting")
        return pb.StatusResponse(state=state, world_size=self.state.final_world_size,
                                 ranks_completed=len(self.state.completed_ranks()),
                                 events=self.state.events,
                                 bundle_path=str(self._final.bundle) if self._final else "")


class _OverloadedError(SenderError):
    """A call refused for the memory it would hold, with when to come back."""

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message, code="RESOURCE_EXHAUSTED")
        self.retry_after_ms = retry_after_ms


class _Room:
    """Flow control for large relay calls (``Reserve``, :data:`HELD_BYTES`): a relay sets
    aside the bytes of its next call and is answered when the coordinator has room for
    them, first asked first answered; that call then goes through. A burst of every
    node waits at the nodes, in a queue of small calls, instead of in the coordinator's
    memory. A grant not used within :data:`GRANT_SECONDS` lapses."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0  # bytes of calls in progress
        self.reserved = 0  # bytes granted to calls that have not arrived
        self._grants: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._waiting: deque[tuple[str, int, asyncio.Future[None]]] = deque()

    def _fits(self, size: int) -> bool:
        used = self.held + self.reserved
        return used == 0 or used + size <= self.limit

    async def reserve(self, node: str, size: int) -> None:
        """Return once ``size`` bytes are set aside for ``node``'s next call."""
        self._lapse(node)  # asked again: what it was granted before went unused
        if not self._waiting and self._fits(size):
            self._grant(node, size)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (node, size, waiter)
        self._waiting.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:  # the relay gave up (its deadline)
            if entry in self._waiting:
                self._waiting.remove(entry)
            elif waiter.done() and not waiter.cancelled():
                self._lapse(node)  # granted as it gave up: let it go
            raise

    def granted(self, node: str) -> bool:
        """True when ``node`` was granted room for its next call (Reserve answered)."""
        return node in self._grants

    def hold(self, node: str, size: int) -> bool:
        """Count a call's bytes as held; False (refuse it) when there is no room and its
        node was granted none."""
        granted = self._grants.pop(node, None)
        if granted is not None:
            granted[1].cancel()
            self.reserved -= granted[0]
        elif not self._fits(size):
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held -= size
        self._wake()

    def _grant(self, node: str, size: int) -> None:
        handle = asyncio.get_running_loop().call_later(GRANT_SECONDS, self._lapse, node)
        self._grants[node] = (size, handle)
        self.reserved += size

    def _lapse(self, node: str) -> None:
        granted = self._grants.pop(node, None)
        if granted is not None:
            granted[1].cancel()
            self.reserved -= granted[0]
            self._wake()

    def _wake(self) -> None:
        while self._waiting and self._fits(self._waiting[0][1]):
            node, size, waiter = self._waiting.popleft()
            if not waiter.done():
                self._grant(node, size)
                waiter.set_result(None)


class _Slots:
    """A virtual queue of callers told when to come back: each takes the next slot after
    ``start`` (what is ahead of it), ``cost`` seconds long, and is told its slot as 4/3
    of the wait (agents wait 0.5 to 1.0 times what they are told, drawn at random), in
    ms within [``low``, ``high``]."""

    def __init__(self) -> None:
        self._until = 0.0  # when the slots handed out so far are served

    def take(self, now: float, start: float, cost: float, low: int, high: int) -> int:
        self._until = max(self._until, start) + cost
        return min(max(int((self._until - now) * 4 / 3 * 1000), low), high)


class _Backlog:
    """When a caller refused for memory should come back. Each refusal takes the next
    slot of a virtual queue that drains at the rate requests were served in the last
    second, so a burst of refused relays returns spread over the time it takes to serve
    them, instead of all at once after a fixed delay and refused again. Agents wait 0.5
    to 1.0 times what they are told, drawn at random: the slot is told as 4/3 of it."""

    def __init__(self, budget: int) -> None:
        self._slots = _Slots()
        self._rate = float(max(budget, 1 << 20))  # bytes/s served, until measured
        self._window = (time.monotonic(), 0)  # (since, bytes served since)

    def released(self, size: int, now: float) -> None:
        since, served = self._window
        served += size
        if now - since >= 1.0:
            self._rate = max(served / (now - since), float(1 << 20))
            self._window = (now, 0)
        else:
            self._window = (since, served)

    def refuse(self, size: int, now: float) -> int:
        return self._slots.take(now, now, size / self._rate, RETRY_AFTER_MS,
                                MAX_RETRY_AFTER_MS)


class _Admission:
    """Admission control (:data:`MAX_CALLS`): how many calls are being handled, how fast
    they are served, and when a refused one should come back.

    A call is admitted when fewer than ``limit`` are in progress and those ahead of it
    are served (at the rate measured over the last second) within
    :data:`DEADLINE_SHARE` of the time its deadline leaves. Otherwise it is refused
    before any work, and takes the next slot of a virtual queue that drains at that
    rate: the refused of a burst come back spread over the time serving them takes,
    each told its slot (as 4/3 of it: agents wait 0.5 to 1.0 times what they are told,
    drawn at random), rather than all at once, to time out in the queue and be resent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.rate = 1000.0  # calls/s served while busy, until measured
        self._busy = 0.0  # seconds with a call in progress, in this window
        self._served = 0  # calls served, in this window
        self._last = time.monotonic()  # when in_flight last changed
        self._slots = _Slots()  # refused calls and paced callers, in one queue
        self.lag = 0.0  # how late the event loop runs what is ready (seconds, smoothed)

    async def watch_lag(self, period: float = 0.05) -> None:
        """Measure how late the event loop runs a timer (:attr:`lag`): calls queue there,
        and in gRPC's own queue before it, unseen by :attr:`in_flight`."""
        loop = asyncio.get_running_loop()
        samples: deque[float] = deque(maxlen=10)
        while True:
            start = loop.time()
            await asyncio.sleep(period)
            samples.append(max(loop.time() - start - period, 0.0))
            # The least of the last ten: a backlog shows in every sample, a stall of the
            # process (descheduled on a busy host, a collection) in one, and refusing
            # every call after a stall would only add retries.
            self.lag = min(samples)

    def _tick(self, now: float) -> None:
        if self.in_flight:
            self._busy += now - self._last
        self._last = now

    def admit(self, now: float, time_remaining: float | None) -> int | None:
        """None (admitted: call :meth:`done` when it ends), or the retry-after (ms)."""
        # What is ahead of a call admitted now: the calls in progress, and the wait for the
        # event loop that runs them (calls queued before they reach a handler).
        ahead = self.in_flight / self.rate + self.lag
        if time_remaining is not None and time_remaining <= 0:
            return RETRY_AFTER_MS  # its caller has given up already: do nothing
        if self.in_flight < self.limit and (
                time_remaining is None or ahead <= DEADLINE_SHARE * time_remaining):
            self._tick(now)
            self.in_flight += 1
            return None
        # The slot after what is in progress and what was refused before.
        return self._slots.take(now, now + ahead, 1 / self.rate, RETRY_AFTER_MS,
                                MAX_ADMISSION_WAIT_MS)

    def pace(self, now: float) -> int | None:
        """None, or when the caller of an answered call should make its next one (ms):
        when the calls ahead would take over :data:`PACE_AFTER_S` to serve, the next
        slot of the virtual queue (told as 4/3 of it, as a refusal's retry-after)."""
        ahead = self.in_flight / self.rate + self.lag
        if ahead <= PACE_AFTER_S:
            return None
        return self._slots.take(now, now + ahead, 1 / self.rate, 0, MAX_PACE_MS)

    def done(self, now: float, *, served: bool = True) -> None:
        self._tick(now)
        self.in_flight -= 1
        self._served += served
        # The rate while busy (idle time says nothing of what the coordinator can do),
        # once a window holds a second of work; never under 50/s.
        if self._busy >= 1.0:
            self.rate = max(self._served / self._busy, 50.0)
            self._busy, self._served = 0.0, 0


def _handlers(servicer: _Servicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The Collector service's handlers, as the generated ``add_CollectorServicer_to_server``
    makes them, except that each request's deserializer notes its size on the wire (for
    the budget of bytes held, :data:`HELD_BYTES`)."""
    service = pb.DESCRIPTOR.services_by_name["Collector"]
    handlers = {}
    for method in service.methods:
        request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name), request_deserializer=partial(_sized, request),
            response_serializer=response.SerializeToString)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _sized(message: Any, data: bytes) -> Any:
    _REQUEST_BYTES.set(len(data))
    return message.FromString(data)


class _Servicer(pb_grpc.CollectorServicer):  # type: ignore[misc]  # generated base
    """Authenticates, authorizes, rate-limits, and maps errors to gRPC status codes,
    all in exactly one place (``_call``)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    def _identity(self, context: aio.ServicerContext[Any, Any]) -> Identity | None:
        if not self._c.tls:
            if not wire.peer_is_loopback(context.peer()):
                raise SenderError(f"transport: plaintext is accepted from loopback only, found "
                                  f"{context.peer()}", code="UNAUTHENTICATED")
            return None
        from slsa_dist.sign._ca import identity_from_pem

        pems = list((context.auth_context() or {}).get("x509_pem_cert") or [])
        if not pems:
            raise SenderError("transport: expected a client certificate from the job CA, found "
                              "none", code="UNAUTHENTICATED")
        try:
            identity = identity_from_pem(pems[0])
        except InputError as exc:
            raise SenderError(str(exc), code="UNAUTHENTICATED") from None
        if identity.job != self._c.job_id:
            raise SenderError(f"identity: expected a certificate for job {self._c.job_id!r}, "
                              f"found one for job {identity.job!r}", code="PERMISSION_DENIED")
        return identity

    async def _call(self, context: aio.ServicerContext[Any, Any],
                    body: Callable[[Principal], Awaitable[T]], *, mutates: bool = True,
                    node: str = "", relay: bool = False, cost: int = 1,
                    admit: bool = True) -> T:
        """Authenticate the peer (its certificate, or loopback in plaintext) as the
        principal the body is called with; what that principal may claim is decided in
        one place, ``collect._authority``, at ingest, before any state changes."""
        self._c.touch()
        self._c.calls += 1
        try:
            identity = self._identity(context)
            principal = authority.OPERATOR if identity is None \
                else Principal(identity.role, identity.name)
            # The rate bucket: the certificate's identity; in plaintext (one host, trusted
            # by the operator) the node the call is for, so local relays do not share one.
            # Each request a call carries costs a token (a Relay call: one per item).
            peer = identity.uri() if identity is not None else \
                f"{context.peer().rsplit(':', 1)[0]}/{node}"
            if not self._c.allow(peer, cost):
                self._c.refused += 1
                raise SenderError(f"rate: expected at most {RATE_PER_SECOND} requests/s from "
                                  f"{peer}, found more", code="RESOURCE_EXHAUSTED")
        except SenderError as exc:
            code, detail = wire.status_of(exc)
            await context.abort(code, detail, trailing_metadata=wire.retry_after_trailer(
                RETRY_AFTER_MS) if code == grpc.StatusCode.RESOURCE_EXHAUSTED else ())
        if mutates and self._c.journal_failure is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                "journal: expected a writable journal, found it failed "
                                f"({self._c.journal_failure}); restart the coordinator")
        # Admission, before any work: a relay's call with room reserved was admitted when
        # its Reserve was answered; a read, a Reserve or a Finalize is never turned away.
        admitted = admit and mutates and not (relay and self._c.room.granted(node))
        try:
            if admitted:
                self._c.admit(context.time_remaining())
        except _OverloadedError as exc:
            code, detail = wire.status_of(exc)
            await context.abort(code, detail,
                                trailing_metadata=wire.retry_after_trailer(exc.retry_after_ms))
        size = _REQUEST_BYTES.get() if mutates else 0  # a read or a Reserve holds nothing
        try:
            if size:
                self._c.hold(size, node if relay else "")  # only a Relay call uses a grant
        except _OverloadedError as exc:
            if admitted:
                self._c.admission.done(time.monotonic(), served=False)
            code, detail = wire.status_of(exc)
            await context.abort(code, detail,
                                trailing_metadata=wire.retry_after_trailer(exc.retry_after_ms))
        try:
            reply = await body(principal)
        except (SenderError, JournalFailed, InputError) as exc:
            code, detail = wire.status_of(exc)
            trailer = wire.resync_trailer(exc) if isinstance(exc, SenderError) else ()
            await context.abort(code, detail, trailing_metadata=trailer)
            raise AssertionError("unreachable: abort raises") from None
        finally:
            if size:
                self._c.release(size)
            if admitted:
                self._c.admission.done(time.monotonic())
        # Loaded: the caller's next call waits for its slot rather than in the queue.
        pace = self._c.admission.pace(time.monotonic()) if admitted else None
        if pace is not None:
            context.set_trailing_metadata(wire.pace_trailer(pace))
        return reply

    async def Challenge(self, request: pb.ChallengeRequest,  # noqa: N802 -- gRPC's method names
                        context: aio.ServicerContext[Any, Any]) -> pb.ChallengeResponse:
        return await self._call(context, partial(self._c.challenge, request),
                                node=request.node_id)

    async def RegisterNode(self, request: pb.RegisterNodeRequest,  # noqa: N802
                           context: aio.ServicerContext[Any, Any]) -> pb.RegisterResponse:
        peer = wire.peer_host(context.peer())
        return await self._call(context, partial(self._c.register_node, request, peer=peer),
                                node=request.node_id)

    async def RegisterRank(self, request: pb.RegisterRankRequest,  # noqa: N802
                           context: aio.ServicerContext[Any, Any]) -> pb.RegisterResponse:
        return await self._call(context, partial(self._c.register_rank, request),
                                node=request.node_id)

    async def Report(self, request: pb.ReportRequest,  # noqa: N802
                     context: aio.ServicerContext[Any, Any]) -> pb.ReportResponse:
        return await self._call(context, partial(self._c.accept_batch, request),
                                node=self._c.state.sender_node(request.sender) or "")

    async def Relay(self, request: pb.RelayRequest,  # noqa: N802
                    context: aio.ServicerContext[Any, Any]) -> pb.RelayResponse:
        return await self._call(context, partial(self._c.relay, request),
                                node=request.node_id, relay=True,
                                cost=len(request.items))

    async def Reserve(self, request: pb.ReserveRequest,  # noqa: N802
                      context: aio.ServicerContext[Any, Any]) -> pb.ReserveResponse:
        return await self._call(context, partial(self._c.reserve, request), mutates=False,
                                node=request.node_id)

    async def Finalize(self, request: pb.FinalizeRequest,  # noqa: N802
                       context: aio.ServicerContext[Any, Any]) -> pb.FinalizeResponse:
        return await self._call(context, partial(self._c.finalize_rpc, request), admit=False)

    async def GetStatus(self, request: pb.StatusRequest,  # noqa: N802
                        context: aio.ServicerContext[Any, Any]) -> pb.StatusResponse:
        # Anyone of the job may ask (its certificate was checked): the principal is unused.
        return await self._call(context, lambda _: self._c.status(request), mutates=False)


class CoordinatorThread:
    """A Coordinator on its own event loop in a daemon thread, for callers that are not
    async themselves: the Ray Train callback runs the job's coordinator in the driver
    this way, and tests run one in-process.

    >>> # with CoordinatorThread(job_id="j", signer=signer, out_dir="out") as server:
    >>> #     ...; server.wait_finalized()
    """

    def __init__(self, config: CoordinatorConfig | None = None, *, signer: Signer,
                 listen: str = "127.0.0.1:0", tls: Path | None = None,
                 evidence_verifier: EvidenceVerifier | None = None, **settings: Any) -> None:
        """``config``, or its fields as keywords (``job_id=..., out_dir=..., ...``)."""
        self.config = config or CoordinatorConfig(**settings)
        self._signer = signer
        self._evidence_verifier = evidence_verifier
        self._listen = listen
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.coordinator: Coordinator | None = None
        self.port = 0

    def __enter__(self) -> CoordinatorThread:
        self._thread.start()

        async def start() -> int:
            self.coordinator = Coordinator(self.config, signer=self._signer,
                                           evidence_verifier=self._evidence_verifier)
            return await self.coordinator.start(self._listen, tls=self._tls)

        self.port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(30)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_finalized(self, timeout: float = 60) -> FinalResult:
        assert self.coordinator is not None
        return asyncio.run_coroutine_threadsafe(self.coordinator.wait_finalized(),
                                                self._loop).result(timeout)

    def finalize(self, reason: str = "request") -> FinalResult:
        assert self.coordinator is not None
        return asyncio.run_coroutine_threadsafe(self.coordinator.finalize(reason),
                                                self._loop).result(60)

    def __exit__(self, *exc: object) -> None:
        if self.coordinator is not None:
            asyncio.run_coroutine_threadsafe(self.coordinator.stop(0.5), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
