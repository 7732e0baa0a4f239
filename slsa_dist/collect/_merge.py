"""The merge: a pure state machine from accepted messages to ONE Statement.

No I/O happens here: no sockets, no files, no clocks (times are passed in),
no randomness (nonces are passed in). The gRPC servicer is a thin shell that
journals what this machine accepts and replays the journal into it after a
restart, so replay rebuilds exactly the state that was acknowledged.

Messages are the wire types of ``slsa_dist._pb.v1`` (this module is private;
nothing here leaks into the public API). Every refusal raises
:class:`~slsa_dist.errors.SenderError` with a status name and a message
saying what was expected and what was found; a refused message changes
nothing.

The contract:

1. Every message names this coordinator's job id (else ``NOT_FOUND``).
2. The world size is fixed by the operator (configuration, or the launcher's
   own view), never by a rank; every registration agrees with it
   (``FAILED_PRECONDITION``) and every rank lies in ``[0, world_size)``
   (``OUT_OF_RANGE``). An elastic job has a range instead (``min_world_size``
   to ``world_size``): each attempt's world size lies in it, and every rank of
   one attempt agrees with the first to register. The job is judged by its
   final attempt (the highest registered; with launchers, the highest a launcher
   opened): its ranks must all complete; nodes
   and ranks that took part only in earlier attempts are recorded as departed.
3. Each (rank, attempt, worker) registers once. Registering again with the
   same identity (node, run id, pid) is the same registration and answers the
   same sender and next sequence number (a retried RPC); with a different
   identity it is refused (``ALREADY_EXISTS``). Nodes likewise, by node id.
4. Sequence numbers are per sender, start at 1 and are consecutive within and
   across batches. A batch whose events were all accepted before is a
   duplicate: ignored and acknowledged. A batch that starts past the next
   expected number is a gap: refused (``FAILED_PRECONDITION``, naming the
   number expected) so the agent resends from there. An overlapping batch
   is accepted from its first new event. Delivery is therefore idempotent.
5. A batch is validated whole before any of it is applied.
6. ``RankCompleted`` is a sender's last event; anything after it is refused.
7. Evidence must answer a nonce issued to the same node by ``challenge``.
8. Nothing is accepted after finalization (``FAILED_PRECONDITION``);
   finalizing again returns the same result.
9. Limits (each with its reason) are checked before anything is applied.
10. Who may claim what is one table (``collect._authority``): every call names the
    principal the coordinator observed, and a claim from any other is refused
    (``PERMISSION_DENIED``) before anything changes. A worker joins its (rank,
    attempt) only from the node the rank runs on; once any launcher reported an
    attempt, only launchers open attempts and a rank counts only where its node's
    launcher lists it. What contradicts a claim accepted earlier is judged at
    finalization (a conflict), so arrival order never matters.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar, Protocol

import orjson

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.attest._verdict import UNAVAILABLE, Appraisal, EvidenceVerdict, EvidenceVerifier
from slsa_dist.collect import _authority as authority
from slsa_dist.collect._authority import OPERATOR, Principal
from slsa_dist.digest._descriptors import checkpoint_record
from slsa_dist.digest._manifest import Manifest, Resource, path_order
from slsa_dist.errors import InputError, SenderError
from slsa_dist.model import _records as records
from slsa_dist.model._digests import FILE_ALGORITHMS, check_digest, file_digest
from slsa_dist.model._ledger import LEDGER_NAME, MEDIA_LEDGER, Ledger, LedgerEntry, order_key
from slsa_dist.model._records import (
    MEDIA_CHECKPOINT,
    MEDIA_COMPLETENESS,
    MEDIA_INPUT,
    MEDIA_NODE,
    MEDIA_RANK,
)
from slsa_dist.model._statement import (
    DEFAULT_BUILDER_ID,
    ProvenanceBuilder,
    ResourceDescriptor,
    Statement,
    invocation_id,
    record_descriptor,
    redact_parameters,
    redact_url,
)

__all__ = ["JobState", "LedgerWriter", "Limits", "MemoryRecords", "RecordStore", "Registered"]

# Writes the records it is handed (in ledger order) and says what it wrote.
LedgerWriter = Callable[[Iterable[LedgerEntry], Mapping[str, Any]], Ledger]

_FINAL_ROLES = (pb.FINAL, pb.OUTPUT)
# Per-file digests of an artifact: one algorithm per artifact, as OMS manifests
# require; the root (the subject digest) is SHA-256 either way.
INDEX_URI = records.INDEX_URI
# A rank record lists its shards inline up to this many; beyond it the record
# carries a count and a root digest (the shards themselves are dependencies).
_INLINE_SHARDS = 256


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one coordinator's memory and CPU predictable."""

    # Ranks per job: 64Ki covers today's largest jobs; above it, shard the job.
    max_world_size: int = 65_536
    # Events per batch: bounds the work one RPC can demand before it is acked.
    max_batch_events: int = 10_000
    # Events per sender: a runaway reporter cannot exhaust the coordinator.
    max_events_per_sender: int = 10_000_000
    # Evidence blob: TPM quotes are ~1 KiB, TDX/SNP reports ~5 KiB, NVIDIA
    # evidence for 8 GPUs tens of KiB; 1 MiB leaves room without inviting abuse.
    max_evidence_bytes: int = 1 << 20
    # JSON payloads (inventory, parameters, annotations): an inventory with
    # every installed distribution is ~50 KiB.
    max_json_bytes: int = 1 << 20
    # Distinct artifacts and files: bounds the size of the provenance.
    max_artifact_files: int = 1_000_000
    # Nonces issued to one node: its agent asks once per attempt; 64 covers every
    # restart budget in use, and a node cannot make the coordinator keep thousands.
    max_challenges_per_node: int = 64
    # Capture gaps listed per sender (the rest are counted) and the text kept of each:
    # a rank whose capture fails on every batch must not flood the provenance.
    max_capture_gaps_per_sender: int = 64
    max_capture_gap_chars: int = 500
    # Workers (senders) of one rank in one attempt: DataLoader workers start afresh each
    # epoch unless persistent (8 workers x 512 epochs); a node cannot grow one rank's.
    max_workers_per_rank: int = 4_096
    # Senders one principal (a node's certificate or relay, a rank's certificate)
    # registers: a sender costs ~600 bytes, so one principal holds ~40 MiB at most.
    max_senders_per_principal: int = 65_536
    # Items in one Relay call: twice what a relay sends (its batch_max, 512); the rate
    # limit charges each item as one request.
    max_relay_items: int = 1_024
    # Attempts one node reports: every restart budget in use fits.
    max_attempts_per_node: int = 1_024


def _no_verifier(kind: str, blob: bytes, nonce: bytes, job_id: str, node: str, /, *,
                 appraisal: Appraisal | None = None) -> EvidenceVerdict:
    del blob, nonce, job_id, node, appraisal
    return EvidenceVerdict(status="unverified",
                           reason=f"no verifier for evidence kind {kind!r} in this coordinator")


def _challenge_json(challenge: bytes) -> dict[str, Any]:
    """The recorded TPM credential challenge as a JSON object ({} when none)."""
    if not challenge:
        return {}
    try:
        value = json.loads(challenge)
    except ValueError:
        return {"error": "unreadable challenge record"}
    return value if isinstance(value, dict) else {"error": "unreadable challenge record"}


@dataclass(frozen=True)
class Registered:
    sender: str
    next_sequence: int
    new: bool  # False when this repeated an earlier registration (nothing to journal)


@dataclass(slots=True)
class _Sender:
    key: str
    identity: tuple[Any, ...]
    rank: int | None
    attempt: int
    node: str
    next_sequence: int = 1
    events: int = 0
    dropped: int = 0
    lost: int = 0
    completed: tuple[int, str] | None = None
    capture_gaps: int = 0  # reported; the first few are listed in JobState._capture_gaps


class _Input:
    """A shard any rank read, once for the job: numbered as first read (the ledger's
    ``input/<n>``), with the first rank that read it and the sampler it was read with."""

    __slots__ = ("digest", "first_rank", "name", "ref", "sampler", "uri")

    def __init__(self, *, name: str, uri: str, digest: dict[str, str], ref: int,
                 first_rank: int, sampler: dict[str, Any]) -> None:
        self.name, self.uri, self.digest = name, uri, digest
        self.ref, self.first_rank, self.sampler = ref, first_rank, sampler


class _Shard:
    """One shard as one rank read it: kept for every (rank, shard), so it is compact
    (slots; its name and digest are its input's, shared with every other rank that read
    it; the epochs one span, a set only when read out of order)."""

    __slots__ = ("chain", "events", "first", "input", "last", "others", "sampler", "samples")

    def __init__(self, source: _Input) -> None:
        self.input = source
        self.samples = 0
        self.events = 0
        self.first = self.last = -1  # the epochs read, first..last, while contiguous
        self.others: set[int] | None = None  # every epoch, once they were not
        # The index digests in order, chained: SHA-256(chain || index digest) per read. A
        # chain (not one running hash) can be picked up again from the record it wrote.
        self.chain = b""
        self.sampler: dict[str, Any] = {}

    def add_index(self, index_digest: str) -> None:
        self.chain = hashlib.sha256(self.chain + index_digest.encode()).digest()

    @property
    def index_digest(self) -> str:
        return self.chain.hex() if self.chain else _EMPTY_CHAIN

    @classmethod
    def from_record(cls, data: Mapping[str, Any], source: _Input) -> _Shard:
        """The shard again from the record :meth:`ref_dict` wrote (a rank reopened), with
        ``source`` the input it refers to."""
        shard = cls(source)
        shard.samples, shard.events = data["samples"], data["reads"]
        spans = [(int(first), int(last)) for first, last in data["epochs"]]
        if len(spans) == 1:
            shard.first, shard.last = spans[0]
        elif spans:
            shard.others = {e for first, last in spans for e in range(first, last + 1)}
        digest = data["indexDigest"]
        shard.chain = b"" if digest == _EMPTY_CHAIN else bytes.fromhex(digest)
        shard.sampler = dict(data["sampler"]) if "sampler" in data else source.sampler
        return shard

    def add_epoch(self, epoch: int) -> None:
        if self.others is not None:
            self.others.add(epoch)
        elif self.first < 0:
            self.first = self.last = epoch
        elif self.first <= epoch <= self.last + 1:  # the usual case: in order
            self.last = max(self.last, epoch)
        else:
            self.others = {*range(self.first, self.last + 1), epoch}

    def _epochs(self) -> tuple[tuple[int, int], ...]:
        if self.others is not None:
            return _spans(self.others)
        return ((self.first, self.last),) if self.first >= 0 else ()

    def to_dict(self) -> dict[str, Any]:
        return records.shard_read_dict(name=self.input.name, digest=self.input.digest,
                                       samples=self.samples, reads=self.events,
                                       epochs=self._epochs(), index_digest=self.index_digest,
                                       sampler=self.sampler)

    def ref_dict(self) -> dict[str, Any]:
        """This read in a ledger's rank record: its input's number, not its name and digest;
        its sampler only where it differs from the input's."""
        shared = self.input.sampler
        same = self.sampler is shared or self.sampler == shared
        return records.shard_ref_dict(ref=self.input.ref, samples=self.samples,
                                      reads=self.events,
                                      epochs=self._epochs(), index_digest=self.index_digest,
                                      sampler=None if same else self.sampler)


@dataclass(slots=True)
class _Attempt:
    attempt: int
    node: str
    run_id: str
    registered: str
    workers: set[int] = field(default_factory=set)
    completed: tuple[int, str] | None = None
    relayed_by: str = ""


@dataclass(slots=True)
class _Rank:
    rank: int
    attempts: dict[int, _Attempt] = field(default_factory=dict)
    shards: dict[Any, _Shard] = field(default_factory=dict)  # by _digest_key
    # (artifact, path, algorithm, digest): the strings are the artifact's own (stored once)
    files: list[tuple[str, str, str, str]] = field(default_factory=list)
    inventory: dict[str, Any] | None = None
    reported: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    open_senders: int = 0  # registered senders of this rank that did not complete yet
    # Once every sender completed, the record is written (canonical JSON) and the
    # details above dropped: finalizing 65,536 ranks then copies bytes, and a sealed
    # rank takes a third of the memory. A new attempt or worker reopens it.
    sealed: Any = None  # the handle the record store gave for the record's bytes
    sealed_completed: bool = False


@dataclass
class _Node:
    node: str
    hostname: str
    node_rank: int
    peer: str = ""
    nonces: list[bytes] = field(default_factory=list)
    tpm_challenges: dict[bytes, bytes] = field(default_factory=dict)  # nonce -> record
    inventory: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    evidence: list[records.EvidenceRecord] = field(default_factory=list)
    attempts: dict[int, records.NodeAttempt] = field(default_factory=dict)

    def record(self) -> records.NodeRecord:
        return records.NodeRecord(
            node=self.node, hostname=self.hostname, node_rank=self.node_rank,
            connected_from=self.peer, evidence=tuple(self.evidence), challenges=len(self.nonces),
            attempts=tuple(self.attempts[a] for a in sorted(self.attempts)),
            inventory=self.inventory, reported=self.reported)


@dataclass
class _Artifact:
    name: str
    role: int
    order: int
    # path -> (digest, size, rank that wrote it)
    files: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    algorithm: str = "sha256"
    planned: set[str] = field(default_factory=set)
    conflicts: list[str] = field(default_factory=list)


_EMPTY_CHAIN = hashlib.sha256(b"").hexdigest()  # a shard read without index digests


def _spans(values: set[int]) -> tuple[tuple[int, int], ...]:
    """``{0, 1, 2, 5}`` -> ``((0, 2), (5, 5))``: epochs read stay small in the record."""
    spans: list[list[int]] = []
    for value in sorted(values):
        if spans and value == spans[-1][1] + 1:
            spans[-1][1] = value
        else:
            spans.append([value, value])
    return tuple((first, last) for first, last in spans)


def _reject(code: str, message: str, *, resync: bool = False) -> SenderError:
    return SenderError(message, code=code, resync=resync)


def _timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# JSON a sender may nest: inventories and parameters are a few levels deep; past this
# the parser's own stack is at stake.
_MAX_JSON_DEPTH = 64
# Integers every verifier reads alike: JavaScript and Go's JSON decoders use doubles.
_MAX_SAFE_INTEGER = 2**53 - 1


def _json_object(text: str, what: str, limit: int, *, floats: bool = False
                 ) -> dict[str, Any]:
    """A sender's JSON object, bounded; floats refused unless ``floats`` (parameters
    keep their JSON types; records, and so the ledger, never hold a float)."""
    if not text:
        return {}
    if len(text) > limit:
        raise _reject("RESOURCE_EXHAUSTED",
                      f"{what}: expected at most {limit} bytes of JSON, found {len(text)}")
    try:
        value = (_FLOAT_DECODER if floats else _DECODER).decode(text)
    except RecursionError:
        value = None  # the depth check below names it
    except ValueError as exc:
        raise _reject("INVALID_ARGUMENT", f"{what}: expected a JSON object, found {exc}") from None
    if value is None or _depth(value) > _MAX_JSON_DEPTH:
        raise _reject("INVALID_ARGUMENT", f"{what}: expected JSON nested at most "
                      f"{_MAX_JSON_DEPTH} levels, found it nested deeper than that")
    if not isinstance(value, dict):
        raise _reject("INVALID_ARGUMENT",
                      f"{what}: expected a JSON object, found {type(value).__name__}")
    return value


class RecordStore(Protocol):
    """Keeps sealed records' bytes and gives them back by the handle ``put`` returned."""

    def put(self, data: bytes) -> Any: ...

    def get(self, handle: Any) -> bytes: ...


class MemoryRecords:
    """Sealed records kept in memory: the handle is the bytes."""

    def put(self, data: bytes) -> Any:
        return data

    def get(self, handle: Any) -> bytes:
        data: bytes = handle
        return data


class _Seen:
    """What a check already accepted, for the values every rank sends again and again (a
    shard's digest, a sampler's JSON): a bounded map, emptied when full, so a sender
    cannot grow it and the per-event cost stays flat."""

    def __init__(self, bound: int = 65_536) -> None:
        self._values: dict[Any, Any] = {}
        self._bound = bound

    def get(self, key: Any) -> Any:
        return self._values.get(key)

    def put(self, key: Any, value: Any) -> Any:
        if len(self._values) >= self._bound:
            self._values.clear()
        self._values[key] = value
        return value


def _digest_key(digest: Mapping[str, str]) -> Any:
    """A hashable key for a digest map: its one SHA-256 as is (the usual case, without
    sorting a protobuf map through the abstract Mapping methods), else its sorted items."""
    if len(digest) == 1 and "sha256" in digest:
        return digest["sha256"]
    return tuple(sorted(digest.items()))


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (the value may be as deep as the parser allows)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > _MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _refuse_float(text: str) -> Any:
    raise ValueError(f"a float ({text}); send it as a string")


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_SAFE_INTEGER:
        raise ValueError(f"an integer beyond ±2^53 ({text[:40]}); send it as a string")
    return value


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text}, which is no JSON number; send it as a string")


_DECODER = json.JSONDecoder(parse_float=_refuse_float, parse_int=_safe_int,
                            parse_constant=_refuse_constant)
_FLOAT_DECODER = json.JSONDecoder(parse_int=_safe_int, parse_constant=_refuse_constant)


def _check_digest(digest: Mapping[str, str], what: str) -> None:
    if not digest:
        raise _reject("INVALID_ARGUMENT", f"{what}: expected a digest, found none")
    try:
        check_digest(digest, what)
    except InputError as exc:
        raise _reject("INVALID_ARGUMENT", str(exc)) from None


# How a node's part in an attempt can end: the job's end, or torchrun restarting its
# workers (after a failure, or for a membership change).
_ENDED = ("SUCCEEDED", "FAILED", "RESTARTED")

class JobState:
    """Everything accepted for one job, and the merge into one Statement."""

    def __init__(
        self,
        *,
        job_id: str,
        world_size: int,
        run_id: str,
        limits: Limits | None = None,
        evidence_verifier: EvidenceVerifier = _no_verifier,
        min_world_size: int | None = None,
        records: RecordStore | None = None,
    ) -> None:
        self.job_id = job_id
        # Where sealed rank records are kept (in memory unless the caller gives a store;
        # the coordinator keeps them in a file, so 65,536 of them cost no memory).
        self._records: RecordStore = records or MemoryRecords()
        self.run_id = run_id  # with the job id, the globally unique invocationId
        self.limits = limits or Limits()
        if not 0 < world_size <= self.limits.max_world_size:
            raise _reject("INVALID_ARGUMENT", "world size: expected 1.."
                          f"{self.limits.max_world_size}, found {world_size}")
        self.world_size = world_size  # the operator's, never a rank's (contract rule 2)
        self.min_world_size = world_size if min_world_size is None else min_world_size
        if not 0 < self.min_world_size <= world_size:
            raise _reject("INVALID_ARGUMENT", f"elastic world size: expected 1..{world_size} "
                          f"as its minimum, found {self.min_world_size}")
        self._verify_evidence = evidence_verifier
        self._senders: dict[str, _Sender] = {}
        self._ranks: dict[int, _Rank] = {}
        self._nodes: dict[str, _Node] = {}
        self._artifacts: dict[str, _Artifact] = {}
        self._dependencies: list[ResourceDescriptor] = []
        self._external: dict[str, Any] = {}
        self._internal: dict[str, Any] = {}
        self._conflicts: list[str] = []
        self._started: dt.datetime | None = None
        self._last: dt.datetime | None = None
        self._finalized: tuple[str, dt.datetime] | None = None
        self.events = 0
        # Kept as events arrive, never rescanned (the per-event cost stays flat): each
        # rank's latest attempt, and the ranks whose latest attempt ended / succeeded.
        self._latest: dict[int, int] = {}
        self._ended: set[int] = set()
        self._succeeded: set[int] = set()
        # Each attempt's world size (set by its first rank), the final attempt so far, and
        # how many ranks below its world size ended / succeeded (recounted only when a
        # new attempt begins, so the per-event cost stays flat).
        self._attempt_world: dict[int, int] = {}
        self._seen_digests = _Seen()
        self._seen_samplers = _Seen(4_096)
        # Every shard any rank read, once, numbered as first read (a replay reads them in
        # the same order): with the first rank that read it, and its number by
        # (name, uri, digest). Rank records in a ledger refer to them by that number, and
        # those that are data (not an index space) are the job's dataset dependencies.
        self._inputs: list[_Input] = []
        self._input_refs: dict[tuple[str, str, Any], int] = {}
        self._final = -1
        self._ended_below = 0
        self._succeeded_below = 0
        # (sender key, rank, "what (why)", allowed), in arrival order per sender
        self._capture_gaps: list[tuple[str, int, str, bool]] = []
        # The launchers' view (collect._authority): which node(s) listed each (rank,
        # attempt), which nodes opened each attempt and when (an arrival number, the
        # coordinator's own observation), and when each node (its own sender or one of
        # its ranks') was last heard from. Once any launcher reported an attempt, only
        # launchers open attempts and bind ranks to nodes.
        self._listed: dict[tuple[int, int], set[str]] = {}
        self._opened: dict[int, set[str]] = {}
        self._opened_at: dict[int, int] = {}
        self._heard: dict[str, int] = {}
        self._arrivals = 0
        # Senders registered per principal (Limits.max_senders_per_principal).
        self._charged: dict[str, int] = {}

    # -- queries ------------------------------------------------------------------------

    @property
    def finalized(self) -> bool:
        return self._finalized is not None

    @property
    def rank_count(self) -> int:
        """Ranks with a record (registered at least once)."""
        return len(self._ranks)

    @property
    def launchers(self) -> bool:
        """Whether any node launcher reported an attempt: then only launchers open
        attempts and bind ranks to nodes (collect._authority). A job without one (ranks
        only: a local demo, a plain process) has nothing but its ranks' word."""
        return bool(self._opened)

    def completed_ranks(self) -> set[int]:
        """Ranks whose latest attempt's main process completed successfully; with
        launchers, only in the final attempt and listed there by the node it ran on."""
        if not self._opened:
            return self._succeeded
        final = self._final
        return {r for r in self._succeeded if self._latest.get(r) == final
                and self._ranks[r].attempts[final].node in self._listed.get((r, final), ())}

    @property
    def final_world_size(self) -> int:
        """The world size of the final attempt (the operator's until a rank registers)."""
        return self._attempt_world.get(self._final, self.world_size)

    @property
    def elastic(self) -> bool:
        return self.min_world_size != self.world_size

    def all_ranks_complete(self) -> bool:
        return self._succeeded_below == self.final_world_size

    def all_ranks_ended(self) -> bool:
        """Every rank of the final attempt reported how it ended, successfully or not."""
        return self._ended_below == self.final_world_size

    def nodes_finished(self) -> bool:
        """Every node still in the job reported a terminal state for its latest attempt;
        a node whose latest attempt is before the final one left the job (died, or
        was not rejoined) and is not waited for."""
        for node in self._nodes.values():
            if not node.attempts:
                return False
            latest = max(node.attempts)
            state = node.attempts[latest].state
            if latest < self._final:
                # In an earlier attempt: finished once it said that attempt ended; one
                # that never did (dead, or still training) is waited for until settle.
                if state not in _ENDED:
                    return False
                continue
            if state not in ("SUCCEEDED", "FAILED"):
                return False
        return True

    def sender_node(self, sender: str) -> str | None:
        """The node a registered sender registered under (None for an unknown sender)."""
        state = self._senders.get(sender)
        return None if state is None else state.node

    def acked_through(self, sender: str) -> int:
        state = self._senders.get(sender)
        return 0 if state is None else state.next_sequence - 1

    # -- messages -------------------------------------------------------------------------

    def _check_open(self, job_id: str) -> None:
        if job_id != self.job_id:
            raise _reject("NOT_FOUND", f"job id: expected {self.job_id!r}, found {job_id!r}")
        if self._finalized is not None:
            raise _reject("FAILED_PRECONDITION",
                          f"job {self.job_id!r}: expected an open job, found it finalized "
                          f"({self._finalized[0]})")

    def _touch(self, now: dt.datetime) -> None:
        if self._started is None:
            self._started = now
        self._last = now

    def challenge(self, job_id: str, node_id: str, nonce: bytes, now: dt.datetime, *,
                  principal: Principal = OPERATOR, tpm_challenge: bytes = b"") -> None:
        """Record a nonce issued to ``node_id`` (the caller made it), with the TPM
        credential challenge issued with it (its record, opening included), if any."""
        self._check_open(job_id)
        authority.authorize_node(principal, node_id, "challenge")
        if node_id not in self._nodes:
            raise _reject("FAILED_PRECONDITION",
                          f"challenge: expected node {node_id!r} to be registered, found it not")
        nonces = self._nodes[node_id].nonces
        if len(nonces) >= self.limits.max_challenges_per_node:
            raise _reject("RESOURCE_EXHAUSTED", f"challenge: expected at most "
                          f"{self.limits.max_challenges_per_node} per node, found node "
                          f"{node_id!r} asking for more")
        nonces.append(nonce)
        if tpm_challenge:
            self._nodes[node_id].tpm_challenges[nonce] = tpm_challenge
        self._touch(now)

    def register_node(self, req: pb.RegisterNodeRequest, now: dt.datetime, *,
                      peer: str = "", principal: Principal = OPERATOR) -> Registered:
        self._check_open(req.job_id)
        if not req.node_id:
            raise _reject("INVALID_ARGUMENT", "node id: expected a non-empty string, found ''")
        authority.authorize_node(principal, req.node_id)
        key = f"node/{req.node_id}"
        identity = (req.hostname, req.node_rank)
        existing = self._senders.get(key)
        if existing is not None:
            if existing.identity != identity:
                raise _reject("ALREADY_EXISTS",
                              f"node {req.node_id!r}: registered as (hostname, node rank) "
                              f"{existing.identity}, found {identity}")
            return Registered(key, existing.next_sequence, new=False)
        if len(self._nodes) >= self.limits.max_world_size:
            raise _reject("RESOURCE_EXHAUSTED", f"node {req.node_id!r}: expected at most "
                          f"{self.limits.max_world_size} nodes, found more")
        self._senders[key] = _Sender(key=key, identity=identity, rank=None, attempt=0,
                                     node=req.node_id)
        self._nodes[req.node_id] = _Node(node=req.node_id, hostname=req.hostname,
                                         node_rank=req.node_rank, peer=peer)
        self._touch(now)
        return Registered(key, 1, new=True)

    def register_rank(self, req: pb.RegisterRankRequest, now: dt.datetime, *,
                      relayed_by: str = "", principal: Principal = OPERATOR) -> Registered:
        """Register a rank; ``relayed_by`` names the node agent that relayed it (which
        must be the node the rank names); ``principal`` is who the coordinator saw."""
        self._check_open(req.job_id)
        if relayed_by and relayed_by != req.node_id:
            raise _reject("PERMISSION_DENIED", f"rank {req.rank}: expected node "
                          f"{relayed_by!r} to relay its own ranks only, found a rank of node "
                          f"{req.node_id!r}")
        authority.authorize_rank(principal, req.rank, req.node_id)
        if req.world_size == 0 or req.world_size > self.limits.max_world_size:
            raise _reject("INVALID_ARGUMENT", "world size: expected 1.."
                          f"{self.limits.max_world_size}, found {req.world_size}")
        if not self.min_world_size <= req.world_size <= self.world_size:
            expected = (f"{self.min_world_size}..{self.world_size}" if self.elastic
                        else f"{self.world_size}")
            raise _reject("FAILED_PRECONDITION",
                          f"world size: expected {expected}, found {req.world_size}")
        first = self._attempt_world.get(req.attempt)
        if first is not None and first != req.world_size:
            raise _reject("FAILED_PRECONDITION",
                          f"attempt {req.attempt}: world size expected {first} (as its first "
                          f"rank registered), found {req.world_size}")
        if req.rank >= req.world_size:
            raise _reject("OUT_OF_RANGE",
                          f"rank: expected 0..{req.world_size - 1}, found {req.rank}")
        if not req.node_id:
            raise _reject("INVALID_ARGUMENT", f"rank {req.rank}: expected the id of the node "
                          "that launched it, found ''")
        key = f"rank/{req.rank}/{req.attempt}/{req.worker}"
        identity = (req.node_id, req.run_id, req.pid)
        existing = self._senders.get(key)
        if existing is not None:
            if existing.identity != identity:
                raise _reject("ALREADY_EXISTS",
                              f"rank {req.rank} attempt {req.attempt} worker {req.worker}: "
                              f"registered as (node, run id, pid) {existing.identity}, "
                              f"found {identity}")
            return Registered(key, existing.next_sequence, new=False)
        self._check_binding(req)
        charged = principal.kind + "/" + principal.name if not principal.trusted \
            else f"node/{req.node_id}"
        if principal is not authority.REPLAY:  # bounded when first accepted
            self._check_budget(req, charged)
        rank = self._ranks.get(req.rank)
        if rank is not None and rank.sealed is not None:
            self._unseal(rank)  # first: a record that cannot be read back changes nothing
        self._charged[charged] = self._charged.get(charged, 0) + 1
        self._senders[key] = _Sender(key=key, identity=identity, rank=req.rank,
                                     attempt=req.attempt, node=req.node_id)
        rank = self._ranks.setdefault(req.rank, _Rank(rank=req.rank))
        rank.open_senders += 1
        attempt = rank.attempts.get(req.attempt)
        if attempt is None:
            attempt = rank.attempts[req.attempt] = _Attempt(
                attempt=req.attempt, node=req.node_id, run_id=req.run_id,
                registered=_timestamp(now), relayed_by=relayed_by)
        attempt.workers.add(req.worker)
        self._attempt_world.setdefault(req.attempt, req.world_size)
        if req.attempt > self._latest.get(req.rank, -1):  # a new attempt: not ended yet
            self._latest[req.rank] = req.attempt
            below = req.rank < self.final_world_size
            if req.rank in self._ended:
                self._ended.discard(req.rank)
                self._ended_below -= below
            if req.rank in self._succeeded:
                self._succeeded.discard(req.rank)
                self._succeeded_below -= below
        if req.attempt > self._final and not self._opened:
            # Without launchers the ranks' highest attempt is the final one; with them,
            # only a launcher opens one (_apply_attempt).
            self._set_final(req.attempt)
        self._hear(req.node_id)
        self._touch(now)
        return Registered(key, 1, new=True)

    def _set_final(self, attempt: int) -> None:
        """A new final attempt, maybe of another size: the counts below its world size
        are counted again (once per attempt, so the per-event cost stays flat)."""
        self._final = attempt
        world = self.final_world_size
        self._ended_below = sum(1 for r in self._ended if r < world)
        self._succeeded_below = sum(1 for r in self._succeeded if r < world)

    def _hear(self, node: str) -> None:
        """The coordinator heard from ``node`` (its sender, or one of its ranks')."""
        self._arrivals += 1
        self._heard[node] = self._arrivals

    def _check_binding(self, req: pb.RegisterRankRequest) -> None:
        """A worker joins its (rank, attempt) only from the node the rank runs on: the
        node it was first registered under, and the node whose launcher lists it."""
        where = f"rank {req.rank} attempt {req.attempt}"
        rank = self._ranks.get(req.rank)
        attempt = rank.attempts.get(req.attempt) if rank is not None else None
        if attempt is not None and attempt.node != req.node_id:
            raise _reject("PERMISSION_DENIED", f"{where} runs on node {attempt.node!r}: "
                          f"expected its workers from there, found one from node "
                          f"{req.node_id!r}")
        listed = self._listed.get((req.rank, req.attempt), set())
        if listed and req.node_id not in listed:
            raise _reject("PERMISSION_DENIED", f"{where}: expected node "
                          f"{', '.join(sorted(listed))} (its launcher lists it), found node "
                          f"{req.node_id!r}")
        node = self._nodes.get(req.node_id)
        record = node.attempts.get(req.attempt) if node is not None else None
        if record is not None and req.rank not in record.ranks:
            raise _reject("PERMISSION_DENIED", f"{where}: node {req.node_id!r} launched "
                          f"rank(s) {list(record.ranks)} in attempt {req.attempt}, not this "
                          "one")
        if attempt is not None and len(attempt.workers) >= self.limits.max_workers_per_rank:
            raise _reject("RESOURCE_EXHAUSTED", f"{where}: expected at most "
                          f"{self.limits.max_workers_per_rank} workers, found more")

    def _check_budget(self, req: pb.RegisterRankRequest, charged: str) -> None:
        if self._charged.get(charged, 0) >= self.limits.max_senders_per_principal:
            raise _reject("RESOURCE_EXHAUSTED", f"rank {req.rank}: expected at most "
                          f"{self.limits.max_senders_per_principal} senders registered by "
                          f"{charged}, found more")

    def accept(self, req: pb.ReportRequest, now: dt.datetime, *,
               principal: Principal = OPERATOR) -> tuple[int, int]:
        """Apply a batch. Returns (index of the first new event, duplicates).

        The caller journals ``req.events[index:]``; the acknowledgement is
        :meth:`acked_through` once that is durable.
        """
        self._check_open(req.job_id)
        sender = self._senders.get(req.sender)
        if sender is None:
            raise _reject("FAILED_PRECONDITION",
                          f"sender: expected a registered sender, found {req.sender!r}",
                          resync=True)
        authority.authorize_sender(principal, req.sender, sender.rank, sender.node)
        count = len(req.events)
        if count > self.limits.max_batch_events:
            raise _reject("RESOURCE_EXHAUSTED", f"batch: expected at most "
                          f"{self.limits.max_batch_events} events, found {count}")
        if req.first_sequence < 1:
            raise _reject("INVALID_ARGUMENT",
                          f"first sequence: expected 1 or more, found {req.first_sequence}")
        if req.first_sequence > sender.next_sequence:
            raise _reject("FAILED_PRECONDITION",
                          f"sequence gap from {req.sender}: expected {sender.next_sequence}, "
                          f"found {req.first_sequence}", resync=True)
        start = sender.next_sequence - req.first_sequence
        if start >= count:
            return count, count
        new = req.events[start:]
        if sender.events + len(new) > self.limits.max_events_per_sender:
            raise _reject("RESOURCE_EXHAUSTED", f"{req.sender}: expected at most "
                          f"{self.limits.max_events_per_sender} events, found more")
        prepared = self._validate(sender, new)
        rank = self._ranks[sender.rank] if sender.rank is not None else None
        for event, extra in zip(new, prepared, strict=True):
            # A shard read (nine events in ten) straight to its apply; the rest through
            # the handler table.
            if rank is not None and event.WhichOneof("kind") == "shard" \
                    and not event.dropped_before and not event.lost_before:
                rank.events += 1
                self._apply_shard_to(rank, event.shard, extra)
            else:
                self._apply(sender, event, extra)
        sender.next_sequence += len(new)
        sender.events += len(new)
        self.events += len(new)
        self._hear(sender.node)
        if sender.completed is not None and sender.rank is not None:
            self._seal(self._ranks[sender.rank])
        self._touch(now)
        return start, start

    def _validate(self, sender: _Sender, events: Sequence[pb.Event]) -> list[Any]:
        """Check every event first; return what each check parsed, so JSON is read once."""
        prepared: list[Any] = []
        completed = sender.completed is not None
        for index, event in enumerate(events):
            where = f"{sender.key} event {index}"
            if completed:
                raise _reject("FAILED_PRECONDITION",
                              f"{where}: expected nothing after RankCompleted, found more events")
            kind = event.WhichOneof("kind")
            if kind == "shard":  # nine events in ten: no table lookup
                prepared.append(self._check_shard(sender, event.shard, where))
                continue
            if kind is None or kind not in self._HANDLERS:
                raise _reject("INVALID_ARGUMENT", f"{where}: expected an event kind, found none")
            authority.authorize_event(kind, sender.rank is not None, where)
            check, _ = self._HANDLERS[kind]
            prepared.append(check(self, sender, getattr(event, kind), where))
            completed = kind == "completed"
        return prepared

    def _apply(self, sender: _Sender, event: pb.Event, extra: Any) -> None:
        if event.dropped_before:
            sender.dropped += event.dropped_before
        if event.lost_before:
            sender.lost += event.lost_before
        if sender.rank is not None:
            self._ranks[sender.rank].events += 1
        kind = event.WhichOneof("kind")
        assert kind is not None  # validated
        _, apply = self._HANDLERS[kind]
        apply(self, sender, getattr(event, kind), extra)

    # -- one check/apply pair per event kind (dispatched by _HANDLERS) ---------------------
    # A check raises SenderError and changes nothing; it returns what the apply needs.
    # An apply cannot fail: everything it relies on was checked for the whole batch.

    def _check_shard(self, sender: _Sender, shard: pb.ShardConsumed, where: str) -> Any:
        authority.authorize_event("shard", sender.rank is not None, where)
        # Every rank reads the same shards with the same sampler: each digest and sampler
        # text is checked once, then recognised (the parsed sampler is never mutated).
        digest = _digest_key(shard.digest)
        if self._seen_digests.get(digest) is None:
            _check_digest(shard.digest, f"{where} shard {shard.name!r}")
            self._seen_digests.put(digest, True)
        if shard.sampler_json:
            sampler = self._seen_samplers.get(shard.sampler_json)
            if sampler is None:
                sampler = self._seen_samplers.put(shard.sampler_json, _json_object(
                    shard.sampler_json, f"{where} sampler", self.limits.max_json_bytes))
            return sampler
        return dict(shard.sampler)  # an agent before sampler_json: every value a string

    def _apply_shard(self, sender: _Sender, shard: pb.ShardConsumed, sampler: Any) -> None:
        assert sender.rank is not None
        self._apply_shard_to(self._ranks[sender.rank], shard, sampler)

    def _apply_shard_to(self, rank: _Rank, shard: pb.ShardConsumed, sampler: Any) -> None:
        key = _digest_key(shard.digest)
        state = rank.shards.get(key)
        if state is None:
            state = rank.shards[key] = _Shard(self._input(shard, key, sampler, rank.rank))
        state.samples += shard.samples
        state.events += 1
        state.add_epoch(shard.epoch)
        if shard.index_digest:
            state.add_index(shard.index_digest)
        if sampler:
            state.sampler = sampler

    def _seal(self, rank: _Rank) -> None:
        """Write a rank's record once its every sender completed (see ``_Rank.sealed``);
        a rank with more shards than a record lists keeps its details."""
        if rank.open_senders or rank.sealed is not None or len(rank.shards) > _INLINE_SHARDS:
            return
        completed = rank.rank in self._succeeded
        try:
            rank.sealed = self._records.put(
                _json_bytes(self._rank_record(rank, completed, refs=True)))
        except OSError:  # the store could not take it (disk full): keep the details
            return
        rank.sealed_completed = completed
        rank.shards, rank.files, rank.inventory, rank.reported = {}, [], None, {}

    def _unseal(self, rank: _Rank) -> None:
        """A sealed rank's details again, from the record it wrote (a new attempt or
        worker registered after all its senders had completed)."""
        assert rank.sealed is not None
        record = orjson.loads(self._records.get(rank.sealed))
        rank.shards = {}
        for data in record.get("shards") or ():
            shard = _Shard.from_record(data, self._inputs[data["input"]])
            rank.shards[_digest_key(shard.input.digest)] = shard
        rank.files = []
        for f in record.get("files") or ():
            artifact = self._artifacts[f["artifact"]]
            # Left out where it was the artifact's own (and a rank whose file another
            # overwrote was reopened first, so the artifact still holds it).
            found = file_digest(f)
            digest = None if found is None else found[1]
            rank.files.append((artifact.name, f["path"], artifact.algorithm,
                               artifact.files[f["path"]][0] if digest is None else digest))
        rank.inventory = record.get("inventory")
        rank.reported = dict(record.get("reported") or {})
        rank.sealed = None

    def _input(self, shard: pb.ShardConsumed, digest_key: Any, sampler: Any,
               rank: int) -> _Input:
        """The job's input for a shard, made when first read."""
        key = (shard.name, shard.uri, digest_key)
        ref = self._input_refs.get(key)
        if ref is None:
            ref = self._input_refs[key] = len(self._inputs)
            self._inputs.append(_Input(name=shard.name, uri=shard.uri,
                                       digest=dict(shard.digest), ref=ref, first_rank=rank,
                                       sampler=sampler or {}))
        return self._inputs[ref]

    def _check_file(self, sender: _Sender, file: pb.FileWritten, where: str) -> Any:
        del sender
        _check_digest(file.digest, f"{where} file {file.path!r}")
        algorithms = sorted(file.digest)
        if len(algorithms) != 1 or algorithms[0] not in FILE_ALGORITHMS:
            raise _reject("INVALID_ARGUMENT", f"{where} file {file.path!r}: expected one digest "
                          f"of {list(FILE_ALGORITHMS)}, found {algorithms}")
        if not file.artifact:
            raise _reject("INVALID_ARGUMENT", f"{where}: file without an artifact name")
        if not file.path or file.path.startswith("/") or ".." in file.path.split("/"):
            raise _reject("INVALID_ARGUMENT", f"{where}: expected a relative path inside "
                          f"the artifact, found {file.path!r}")
        known = self._artifacts.get(file.artifact)
        if known is not None and known.files and known.algorithm != algorithms[0]:
            raise _reject("INVALID_ARGUMENT", f"{where} file {file.path!r}: expected "
                          f"{known.algorithm} like the rest of artifact {file.artifact!r}, "
                          f"found {algorithms[0]}")
        if known is not None and len(known.files) >= self.limits.max_artifact_files:
            raise _reject("RESOURCE_EXHAUSTED", f"{where}: artifact has "
                          f"{self.limits.max_artifact_files} files already")
        return None

    def _apply_file(self, sender: _Sender, written: pb.FileWritten, extra: Any) -> None:
        del extra
        artifact = self._artifact(written.artifact, written.role)
        (artifact.algorithm, digest), = written.digest.items()
        previous = artifact.files.get(written.path)
        if previous is not None and previous[0] != digest:
            artifact.conflicts.append(f"{written.path}: {previous[0][:16]} (rank {previous[2]}) "
                                      f"vs {digest[:16]} ({sender.key})")
            earlier = self._ranks.get(previous[2])
            if earlier is not None and earlier.sealed is not None:
                # Its record left the digest out as the artifact's: reopen it while the
                # artifact still holds that digest, so the record keeps it.
                self._unseal(earlier)
        path = written.path
        artifact.files[path] = (digest, written.size, -1 if sender.rank is None else sender.rank)
        if sender.rank is not None:
            self._ranks[sender.rank].files.append((artifact.name, path, artifact.algorithm,
                                                   digest))

    def _check_planned(self, sender: _Sender, plan: pb.ArtifactPlanned, where: str) -> Any:
        del sender
        if not plan.artifact:
            raise _reject("INVALID_ARGUMENT", f"{where}: plan without an artifact name")
        return None

    def _apply_planned(self, sender: _Sender, plan: pb.ArtifactPlanned, extra: Any) -> None:
        del sender, extra
        self._artifact(plan.artifact, plan.role).planned.update(plan.files)

    def _check_dependency(self, sender: _Sender, dep: pb.Dependency, where: str) -> Any:
        del sender
        annotations = _json_object(dep.annotations_json, f"{where} dependency annotations",
                                   self.limits.max_json_bytes)
        if dep.digest:
            _check_digest(dep.digest, f"{where} dependency {dep.name!r}")
        elif not dep.uri:
            raise _reject("INVALID_ARGUMENT", f"{where} dependency {dep.name!r}: "
                          "expected a uri or a digest, found neither")
        return annotations

    def _apply_dependency(self, sender: _Sender, dep: pb.Dependency, annotations: Any) -> None:
        try:
            self._dependencies.append(ResourceDescriptor(
                name=dep.name or None, uri=redact_url(dep.uri) or None, digest=dict(dep.digest),
                annotations={**annotations, "slsadist_kind": dep.kind or "other"}))
        except InputError as exc:  # journaled before ingest checked digests: say so, go on
            self._conflicts.append(f"{sender.key}: dependency {dep.name!r} left out: {exc}")

    def _check_parameters(self, sender: _Sender, params: pb.Parameters, where: str) -> Any:
        del sender
        limit = self.limits.max_json_bytes
        return (_json_object(params.external_json, f"{where} external parameters", limit,
                             floats=True),
                _json_object(params.internal_json, f"{where} internal parameters", limit,
                             floats=True))

    def _apply_parameters(self, sender: _Sender, params: pb.Parameters, parsed: Any) -> None:
        del params
        external, internal = parsed
        # Redacted as they come in (a rank may send them raw): neither a conflict message
        # nor the statement carries a credential (ProvenanceBuilder redacts once more).
        external, internal = redact_parameters(external), redact_parameters(internal)
        self._merge_parameters(self._external, external, sender.key)
        self._merge_parameters(self._internal, internal, sender.key)

    def _check_inventory(self, sender: _Sender, inventory: pb.Inventory, where: str) -> Any:
        del sender
        return _json_object(inventory.json, f"{where} inventory", self.limits.max_json_bytes)

    def _apply_inventory(self, sender: _Sender, inventory: pb.Inventory, parsed: Any) -> None:
        del inventory
        if sender.rank is not None:
            rank = self._ranks[sender.rank]
            if rank.inventory is None:
                rank.inventory = parsed
        else:
            self._nodes[sender.node].inventory = parsed

    def _check_evidence(self, sender: _Sender, evidence: pb.Evidence, where: str) -> Any:
        del sender  # a rank must not speak for a node's hardware: _validate refused it
        # An oversized blob is recorded as failed evidence, not refused: the node must not
        # be able to hide its other events behind it.
        return len(evidence.blob) > self.limits.max_evidence_bytes

    def _apply_evidence(self, sender: _Sender, evidence: pb.Evidence, oversized: Any) -> None:
        self._nodes[sender.node].evidence.append(
            self._appraise(sender, evidence, oversized=bool(oversized)))

    def _check_annotation(self, sender: _Sender, note: pb.Annotation, where: str) -> Any:
        del sender
        if not note.key:
            raise _reject("INVALID_ARGUMENT", f"{where}: annotation without a key")
        return _json_object('{"v":' + (note.value_json or "null") + "}",
                            f"{where} annotation {note.key!r}", self.limits.max_json_bytes)["v"]

    def _apply_annotation(self, sender: _Sender, note: pb.Annotation, value: Any) -> None:
        if sender.rank is not None:
            self._ranks[sender.rank].reported[note.key] = value
        else:
            self._nodes[sender.node].reported[note.key] = value

    def _check_attempt(self, sender: _Sender, attempt: pb.AttemptRecord, where: str) -> Any:
        attempts = self._nodes[sender.node].attempts
        if attempt.attempt not in attempts \
                and len(attempts) >= self.limits.max_attempts_per_node:
            raise _reject("RESOURCE_EXHAUSTED", f"{where}: expected at most "
                          f"{self.limits.max_attempts_per_node} attempts per node, found more")
        beyond = [r for r in attempt.ranks if r >= self.world_size]
        if beyond:
            raise _reject("OUT_OF_RANGE", f"{where}: expected ranks 0..{self.world_size - 1} "
                          f"launched, found {beyond[:8]}")
        return None

    def _apply_attempt(self, sender: _Sender, attempt: pb.AttemptRecord, extra: Any) -> None:
        del extra
        # The launcher's claims (collect._authority): it opened this attempt and started
        # these ranks on its node. A registration that contradicts them is refused from
        # now on; one that came before is judged at finalization.
        first = not self._opened
        opened = self._opened.setdefault(attempt.attempt, set())
        if not opened:
            self._opened_at[attempt.attempt] = self._arrivals
        opened.add(sender.node)
        for listed in attempt.ranks:
            self._listed.setdefault((listed, attempt.attempt), set()).add(sender.node)
        if first or attempt.attempt > self._final:  # from the first launcher on, theirs
            self._set_final(attempt.attempt)
        attempts = self._nodes[sender.node].attempts
        earlier = attempts.get(attempt.attempt)  # STARTED, then the final state: keep both's
        attempts[attempt.attempt] = records.NodeAttempt(
            attempt=attempt.attempt, run_id=attempt.run_id,
            ranks=tuple(sorted({*(earlier.ranks if earlier else ()), *attempt.ranks})),
            state=attempt.state,
            exit_codes={**(earlier.exit_codes if earlier else {}),
                        **{str(k): v for k, v in attempt.exit_codes.items()}})
        if attempt.state in ("SUCCEEDED", "FAILED"):
            self._ended_by_launcher(attempt)

    def _ended_by_launcher(self, attempt: pb.AttemptRecord) -> None:
        """The launcher saw these ranks' processes exit: they ended, whatever they said
        (a rank SIGKILLed, by the OOM killer say, says nothing), so the job need not
        wait for them. Never a success: only a rank's own report is that."""
        world = self.final_world_size
        for number in attempt.exit_codes:
            if number in self._ended or self._latest.get(number, attempt.attempt) \
                    != attempt.attempt:
                continue
            self._ended.add(number)
            self._ended_below += number < world

    def _check_completed(self, sender: _Sender, done: pb.RankCompleted, where: str) -> Any:
        del sender, done, where  # from a rank's sender: _validate checked it
        return None

    def _apply_completed(self, sender: _Sender, done: pb.RankCompleted, extra: Any) -> None:
        del extra
        assert sender.rank is not None
        sender.completed = (done.exit_code, done.state)
        self._ranks[sender.rank].open_senders -= 1
        worker = int(sender.key.rsplit("/", 1)[1])
        if worker == 0:
            self._ranks[sender.rank].attempts[sender.attempt].completed = sender.completed
            if sender.attempt == self._latest.get(sender.rank):
                below = sender.rank < self.final_world_size
                if sender.rank not in self._ended:
                    self._ended.add(sender.rank)
                    self._ended_below += below
                if done.exit_code == 0 and sender.rank not in self._succeeded:
                    self._succeeded.add(sender.rank)
                    self._succeeded_below += below

    def _check_capture_gap(self, sender: _Sender, gap: pb.CaptureGap, where: str) -> Any:
        del sender  # from a rank's sender: _validate checked it
        if not gap.what:
            raise _reject("INVALID_ARGUMENT", f"{where}: capture gap without what it names")
        return None

    def _apply_capture_gap(self, sender: _Sender, gap: pb.CaptureGap, extra: Any) -> None:
        del extra
        assert sender.rank is not None
        sender.capture_gaps += 1
        if sender.capture_gaps <= self.limits.max_capture_gaps_per_sender:
            limit = self.limits.max_capture_gap_chars
            text = f"{gap.what} ({gap.why})" if gap.why else gap.what
            if len(text) > limit:
                text = text[:limit] + "..."
            self._capture_gaps.append((sender.key, sender.rank, text, gap.allowed))

    # kind of event (the oneof field's name) -> (check, apply). A new kind: one pair above,
    # one line here, one message in proto/slsa_dist/v1/collector.proto.
    _HANDLERS: ClassVar[dict[str, tuple[Callable[..., Any], Callable[..., None]]]] = {
        "shard": (_check_shard, _apply_shard),
        "file": (_check_file, _apply_file),
        "planned": (_check_planned, _apply_planned),
        "dependency": (_check_dependency, _apply_dependency),
        "parameters": (_check_parameters, _apply_parameters),
        "inventory": (_check_inventory, _apply_inventory),
        "evidence": (_check_evidence, _apply_evidence),
        "annotation": (_check_annotation, _apply_annotation),
        "attempt": (_check_attempt, _apply_attempt),
        "completed": (_check_completed, _apply_completed),
        "capture_gap": (_check_capture_gap, _apply_capture_gap),
    }

    def _artifact(self, name: str, role: int) -> _Artifact:
        artifact = self._artifacts.get(name)
        if artifact is None:
            artifact = self._artifacts[name] = _Artifact(name=name, role=role,
                                                         order=len(self._artifacts))
        elif role in _FINAL_ROLES and artifact.role not in _FINAL_ROLES:
            artifact.role = role
        return artifact

    def _appraise(self, sender: _Sender, evidence: pb.Evidence, *,
                  oversized: bool) -> records.EvidenceRecord:
        """The evidence record: the verifier's verdict on a blob answering our nonce."""
        blob = evidence.blob
        # The credential challenge the coordinator issued with this nonce (TPM evidence):
        # recorded beside the evidence, opening included, so anyone re-checks activation.
        challenge = self._nodes[sender.node].tpm_challenges.get(evidence.nonce, b"") \
            if evidence.kind == "tpm" and not oversized else b""
        record = partial(records.EvidenceRecord, kind=evidence.kind, format=evidence.format,
                         sha256=hashlib.sha256(blob).hexdigest(), size=len(blob),
                         tpm_challenge=_challenge_json(challenge))
        if evidence.format == UNAVAILABLE and not oversized:
            # No evidence, and the node said why: recorded, never a silent gap.
            return record(status="unavailable",
                          reason=blob[:500].decode("utf-8", "replace"))
        if oversized:
            verdict = EvidenceVerdict(status="failed", reason=(
                f"evidence: expected at most {self.limits.max_evidence_bytes} bytes, "
                f"found {len(blob)}"))
        elif evidence.nonce not in self._nodes[sender.node].nonces:
            verdict = EvidenceVerdict(status="failed", reason=(
                f"nonce: expected one issued to node {sender.node!r} for job {self.job_id!r}, "
                f"found {evidence.nonce.hex()[:32] or 'none'}"))
        else:
            try:
                if challenge:
                    verdict = self._verify_evidence(evidence.kind, blob, evidence.nonce,
                                                    self.job_id, sender.node,
                                                    appraisal=Appraisal(challenge=challenge))
                else:
                    verdict = self._verify_evidence(evidence.kind, blob, evidence.nonce,
                                                    self.job_id, sender.node)
            except Exception as exc:  # a verifier bug must not take the coordinator down
                verdict = EvidenceVerdict(status="failed",
                                          reason=f"verifier raised {type(exc).__name__}: {exc}")
        # The raw evidence travels with the verdict (not for oversized blobs): anyone can
        # re-appraise it from the nonce, job and node in the signed statement.
        return record(status=verdict.status, verified=tuple(verdict.verified),
                      not_verified=tuple(verdict.not_verified), reason=verdict.reason,
                      claims=dict(verdict.claims),
                      blob="" if oversized else base64.b64encode(blob).decode(),
                      nonce="" if oversized else evidence.nonce.hex())

    def _merge_parameters(self, into: dict[str, Any], new: Mapping[str, Any], who: str) -> None:
        for key, value in new.items():
            if key in into and into[key] != value:
                self._conflicts.append(f"{key}: {json.dumps(into[key])[:60]} vs "
                                       f"{json.dumps(value)[:60]} ({who})")
                continue
            into[key] = value

    # -- finalization ---------------------------------------------------------------------

    def finalize(self, job_id: str, reason: str, now: dt.datetime) -> None:
        """Close the job; idempotent. ``reason`` says what triggered it."""
        if job_id != self.job_id:
            raise _reject("NOT_FOUND", f"job id: expected {self.job_id!r}, found {job_id!r}")
        if self._finalized is None:
            self._finalized = (reason or "request", now)

    def missing_ranks(self) -> list[int]:
        done = self.completed_ranks()
        return [r for r in range(self.final_world_size) if r not in done]

    def statement(self, *, builder_id: str = DEFAULT_BUILDER_ID,
                  builder_version: Mapping[str, str] | None = None,
                  internal: Mapping[str, Any] | None = None,
                  ledger: LedgerWriter | None = None) -> Statement:
        """Merge everything into ONE Statement. Requires :meth:`finalize` first.

        With ``ledger`` the per-rank, per-node and per-checkpoint records are handed to it
        one at a time, in ledger order, and the statement carries the ledger's descriptor
        (digest, Merkle root, counts) instead of the records: its size no longer grows
        with the job. Without it every record is a byproduct of the statement.
        """
        if self._finalized is None:
            raise _reject("FAILED_PRECONDITION", "statement: expected a finalized job, found open")
        reason, finished = self._finalized
        started = self._started or finished
        builder = ProvenanceBuilder(builder_id=builder_id,
                                    invocation_id=invocation_id(self.job_id, self.run_id))
        self._add_parameters(builder, internal)
        builder.set_builder(version=builder_version)
        builder.set_times(started=started, finished=max(finished, started))
        missing_files, conflicts, checkpoints = self._add_artifacts(builder)
        conflicts.extend(self._add_dependencies(builder))
        entries = self._ledger_entries(checkpoints, refs=ledger is not None)
        if ledger is None:
            for entry in entries:
                builder.add_byproduct(record_descriptor(name=entry.name,
                                                        media_type=entry.media_type,
                                                        record=entry.mapping()))
        else:
            written = ledger(entries, self._summary())
            builder.add_byproduct(ResourceDescriptor(
                name=LEDGER_NAME, uri=written.uri, digest={"sha256": written.sha256},
                media_type=MEDIA_LEDGER, annotations=written.annotations()))
        outputs = bool(self._subject_artifacts())
        completeness = replace(self._completeness(reason, missing_files, conflicts),
                               outputs_recorded=outputs)
        builder.add_byproduct(_byproduct("completeness", MEDIA_COMPLETENESS, completeness))
        if not outputs:
            # A job that wrote nothing still gets a provenance: its subject stands for this
            # run (job, run id, completeness), so no two runs share it, and both the
            # coordinator and verify say out loud that no output was recorded.
            run = {"invocationId": invocation_id(self.job_id, self.run_id),
                   "completeness": completeness.to_dict()}
            builder.add_subject(ResourceDescriptor(
                name=f"job/{self.job_id}",
                digest={"sha256": hashlib.sha256(
                    json.dumps(run, sort_keys=True).encode()).hexdigest()}))
        return builder.build()

    def _ledger_entries(self, checkpoints: list[LedgerEntry], *,
                        refs: bool) -> Iterator[LedgerEntry]:
        """Every checkpoint, input, node and rank record, in ledger order, built one at a
        time. With ``refs`` (a ledger) each shard read is written once, as an input, and
        rank records refer to it; without, every rank record names its shards in full."""
        yield from sorted(checkpoints, key=lambda e: order_key(e.name))
        if refs:
            for source in self._inputs:
                yield LedgerEntry(f"input/{source.ref}", MEDIA_INPUT, records.input_dict(
                    name=source.name, uri=redact_url(source.uri), digest=source.digest,
                    sampler=source.sampler))
        for name in sorted(self._nodes):
            yield LedgerEntry(f"node/{name}", MEDIA_NODE, self._nodes[name].record().to_dict())
        completed = self.completed_ranks()
        for number in sorted(self._ranks):
            rank = self._ranks[number]
            if refs and rank.sealed is not None \
                    and rank.sealed_completed == (number in completed):
                yield LedgerEntry(f"rank/{number}", MEDIA_RANK,
                                  raw=self._records.get(rank.sealed))
            else:
                if rank.sealed is not None:  # in full, or sealed before it completed
                    self._unseal(rank)
                yield LedgerEntry(f"rank/{number}", MEDIA_RANK,
                                  self._rank_record(rank, number in completed, refs=refs))

    def _summary(self) -> dict[str, Any]:
        """Totals the statement keeps beside a ledger (checked against it by verify)."""
        return {"ranks": len(self._ranks), "completedRanks": len(self.completed_ranks()),
                "nodes": len(self._nodes), "checkpoints": len(self._artifacts),
                "events": self.events}

    def _add_parameters(self, builder: ProvenanceBuilder,
                        internal: Mapping[str, Any] | None) -> None:
        external = dict(self._external)
        external["worldSize"] = self.final_world_size
        if self.elastic:
            external["worldSizeRange"] = [self.min_world_size, self.world_size]
        if self._nodes:
            external.setdefault("nodes", len(self._nodes))
        builder.set_external_parameters(external)
        builder.set_internal_parameters({**self._internal, **(internal or {})})

    def _add_artifacts(self, builder: ProvenanceBuilder
                       ) -> tuple[list[str], list[str], list[LedgerEntry]]:
        """Subjects; returns (missing files, conflicts, checkpoint records)."""
        missing_files: list[str] = []
        checkpoints: list[LedgerEntry] = []
        conflicts = list(self._conflicts)
        subjects = self._subject_artifacts()
        for artifact in sorted(self._artifacts.values(), key=lambda a: a.order):
            if not artifact.files:
                missing_files.extend(f"{artifact.name}/{p}" for p in sorted(artifact.planned))
                continue
            files = artifact.files
            manifest = Manifest(  # whole files only: the path orders them (Resource.sort_key)
                name=artifact.name, algorithm=artifact.algorithm, method="files",
                resources=tuple(Resource(path=p, digest=files[p][0],
                                         algorithm=artifact.algorithm, size=files[p][1])
                                for p in sorted(files, key=path_order)),
                ignore_paths=(),
            )
            # The checkpoint record is built once (the manifest root with it) and its
            # dict too: for a 65,536-rank checkpoint each is a 65,536-file pass.
            record = replace(
                checkpoint_record(manifest, name=artifact.name),
                role="final" if artifact.name in subjects else "intermediate",
                written_by={p: r for p, (_, _, r) in artifact.files.items()},
                expected_files=tuple(sorted(artifact.planned)) if artifact.planned else None)
            missing_files.extend(f"{artifact.name}/{p}"
                                 for p in sorted(artifact.planned - artifact.files.keys()))
            conflicts.extend(f"{artifact.name}/{c}" for c in artifact.conflicts)
            # Held as its JSON until the ledger takes it: four 65,536-file records as
            # dicts were a fifth of the coordinator's peak memory.
            checkpoints.append(LedgerEntry(f"checkpoint/{artifact.name}", MEDIA_CHECKPOINT,
                                           raw=_json_bytes(record.to_dict())))
            if artifact.name in subjects:
                builder.add_subject(ResourceDescriptor(
                    name=artifact.name, digest={"sha256": manifest.identity}))
        return missing_files, conflicts, checkpoints

    def _add_dependencies(self, builder: ProvenanceBuilder) -> list[str]:
        """Declared dependencies and every shard read; returns what had to be left out."""
        left_out: list[str] = []
        for dependency in self._dependencies:
            builder.add_dependency(dependency)
        # Each shard once, as first read (the builder merges equal digests read under
        # other names); an index space is no data: no input.
        for source in self._inputs:
            if source.uri.startswith(INDEX_URI):
                continue
            try:
                builder.add_dependency(ResourceDescriptor(
                    name=source.name or None, uri=redact_url(source.uri) or None,
                    digest=source.digest, annotations={"slsadist_kind": "dataset"}))
            except InputError as exc:  # journaled before ingest checked digests
                left_out.append(f"rank {source.first_rank}: shard {source.name!r} left out: "
                                f"{exc}")
        return left_out

    def _completeness(self, reason: str, missing_files: list[str],
                      conflicts: list[str]) -> records.Completeness:
        gaps: list[str] = []
        for sender in self._senders.values():
            if sender.dropped:
                gaps.append(f"{sender.key}: {sender.dropped} event(s) dropped by the agent")
            if sender.lost:
                gaps.append(f"{sender.key}: {sender.lost} acknowledged event(s) lost by the "
                            "coordinator (its journal was lost)")
        failed_evidence = [f"{node.node}: {e.kind}: {e.reason}" for node in self._nodes.values()
                           for e in node.evidence if e.status == "failed"]
        conflicts = [*conflicts, *self._exit_disagreements(), *self._binding_disagreements(),
                     *self._world_disagreements(), *self._launcher_disagreements()]
        missing_ranks = self.missing_ranks()
        attempts, departed = self._membership()
        capture_gaps, allowed_gaps = self._capture_gap_lines()
        failed_ranks = self._failed_ranks()
        return records.Completeness(
            complete=not (missing_ranks or missing_files or failed_evidence or gaps
                          or conflicts or capture_gaps or failed_ranks),
            failed_ranks=tuple(failed_ranks),
            capture_gaps=tuple(capture_gaps), allowed_capture_gaps=tuple(allowed_gaps),
            finalized_by=reason, missing_ranks=tuple(missing_ranks),
            missing_files=tuple(missing_files), failed_evidence=tuple(failed_evidence),
            sequence_gaps=tuple(gaps), conflicts=tuple(conflicts), events=self.events,
            attempts=tuple(attempts), departed_nodes=tuple(departed))

    def _capture_gap_lines(self) -> tuple[list[str], list[str]]:
        """What capture could not follow, per rank: (gaps that make the job incomplete,
        gaps the job allowed), each ``rank R: capture gap: what (why)``, sorted by rank
        and then as reported; past the per-sender limit, a count."""
        refused: list[tuple[int, int, str]] = []
        allowed: list[tuple[int, int, str]] = []
        for order, (_key, rank, text, ok) in enumerate(self._capture_gaps):
            (allowed if ok else refused).append((rank, order, f"rank {rank}: capture gap: {text}"))
        limit = self.limits.max_capture_gaps_per_sender
        for order, sender in enumerate(self._senders.values(), start=len(self._capture_gaps)):
            if sender.rank is not None and sender.capture_gaps > limit:
                refused.append((sender.rank, order, f"rank {sender.rank}: capture gap: "
                                f"{sender.capture_gaps - limit} more from {sender.key}"))
        return [t for *_, t in sorted(refused)], [t for *_, t in sorted(allowed)]

    def _membership(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Who took part in each attempt and how each node's part ended; the nodes that
        left before the final attempt. Runs once, at finalization."""
        numbers = sorted({*self._attempt_world,
                          *(a for node in self._nodes.values() for a in node.attempts)})
        attempts = []
        for number in numbers:
            names = {n.node for n in self._nodes.values() if number in n.attempts}
            names.update(r.attempts[number].node for r in self._ranks.values()
                         if number in r.attempts)
            ended = {}
            for name in sorted(names):
                node = self._nodes.get(name)
                record = node.attempts.get(number) if node is not None else None
                state = record.state if record is not None else ""
                ended[name] = state if state in _ENDED else "NO_FINAL_REPORT"
            succeeded = sum(1 for r in self._ranks.values()
                            if (a := r.attempts.get(number)) is not None
                            and a.completed is not None and a.completed[0] == 0)
            attempts.append({"attempt": number, "worldSize": self._attempt_world.get(number),
                             "nodes": ended, "ranksSucceeded": succeeded})
        departed = []
        for node in sorted(self._nodes.values(), key=lambda n: n.node):
            if node.attempts and max(node.attempts) < self._final:
                last = node.attempts[max(node.attempts)]
                how = last.state if last.state in _ENDED \
                    else f"{last.state or 'registered'}, no final report"
                departed.append(f"{node.node}: last in attempt {last.attempt} ({how}); not "
                                f"in the final attempt {self._final}")
        return attempts, departed

    def _subject_artifacts(self) -> set[str]:
        with_files = [a for a in self._artifacts.values() if a.files]
        chosen = {a.name for a in with_files if a.role in _FINAL_ROLES}
        if not any(a.role == pb.FINAL for a in with_files):
            # auxiliary files (optimizer, scheduler, RNG state) are never the model
            checkpoints = [a for a in with_files if a.role == pb.CHECKPOINT]
            if checkpoints:  # no final named: the last checkpoint written is the model
                chosen.add(max(checkpoints, key=lambda a: a.order).name)
        return chosen

    def _exit_disagreements(self) -> list[str]:
        """Where a node's launcher and a rank disagree on whether the rank succeeded.

        The rank reports its own exit (tenant data); the node agent saw the process
        end (platform data). A rank that says SUCCEEDED while its launcher saw it
        fail is a conflict, recorded, never resolved in the rank's favour.
        """
        found = []
        for node in self._nodes.values():
            for attempt in node.attempts.values():
                for key, seen in sorted(attempt.exit_codes.items()):
                    rank = self._ranks.get(int(key)) if key.lstrip("-").isdigit() else None
                    state = rank.attempts.get(attempt.attempt) if rank is not None else None
                    if state is None or state.completed is None:
                        continue
                    reported, how = state.completed
                    if (reported == 0) != (seen == 0):
                        found.append(f"rank {key} attempt {attempt.attempt}: the rank reported "
                                     f"exit {reported} ({how}), node {node.node} saw exit {seen}")
                nonzero = sorted(k for k, code in attempt.exit_codes.items() if code != 0)
                if attempt.state == "SUCCEEDED" and nonzero:
                    found.append(f"node {node.node} attempt {attempt.attempt}: SUCCEEDED, yet "
                                 f"rank(s) {', '.join(nonzero)} exited non-zero")
        return found

    def _failed_ranks(self, limit: int = 100) -> list[str]:
        """The ranks of the final attempt that failed, by their own report or by what
        their launcher saw (a non-zero exit on either side): never a successful job.
        ``rank R attempt A: exit N (SIGNAL, STATE); node X saw exit M (SIGNAL)``; past
        ``limit`` lines, a count."""
        final = self._final
        seen: dict[int, list[tuple[str, int]]] = {}
        for node in self._nodes.values():
            record = node.attempts.get(final)
            for key, code in (record.exit_codes.items() if record is not None else ()):
                if key.lstrip("-").isdigit():
                    seen.setdefault(int(key), []).append((node.node, code))
        found: list[str] = []
        for number in sorted({*seen, *(r for r, a in self._latest.items() if a == final)}):
            rank = self._ranks.get(number)
            attempt = rank.attempts.get(final) if rank is not None else None
            reported = attempt.completed if attempt is not None else None
            views = sorted(seen.get(number, ()))
            if (reported is None or reported[0] == 0) and all(c == 0 for _, c in views):
                continue
            if len(found) == limit:
                found.append("more failed ranks (not listed)")
                break
            line = f"rank {number} attempt {final}: " + (
                f"exit {reported[0]} ({_signal_name(reported[0])}{reported[1]})"
                if reported is not None else "no completion reported")
            line += "".join(f"; node {node} saw exit {code}"
                            + (f" ({_signal_name(code)[:-2]})" if code < 0 else "")
                            for node, code in views)
            found.append(line)
        return found

    def _world_disagreements(self) -> list[str]:
        """An attempt's world size comes from its first rank (within the operator's range);
        the launchers' own lists of the ranks they started in that attempt (platform
        data) must fit in it, or a rank claimed a smaller world than the job had."""
        found = []
        for node in self._nodes.values():
            for record in node.attempts.values():
                world = self._attempt_world.get(record.attempt)
                beyond = [r for r in record.ranks if world is not None and r >= world]
                if beyond:
                    found.append(f"attempt {record.attempt}: node {node.node} launched rank(s) "
                                 f"{beyond}, beyond the world size {world} its ranks registered")
        return found

    def _launcher_disagreements(self) -> list[str]:
        """The launchers' claims judged with everything in hand (collect._authority), so
        a claim accepted before its contradiction arrived is caught here: attempts only
        launchers open, ranks only their node's launcher lists, and a later attempt
        judges the job only once the nodes of the earlier ones ended them."""
        if not self._opened:
            return []
        found = []
        for number, rank in sorted(self._ranks.items()):
            for attempt_number, attempt in sorted(rank.attempts.items()):
                where = f"rank {number} attempt {attempt_number}"
                listed = self._listed.get((number, attempt_number), set())
                if attempt_number not in self._opened:
                    found.append(f"{where}: registered, but no node launcher opened attempt "
                                 f"{attempt_number}")
                elif not listed:  # listed elsewhere: _binding_disagreements says so
                    found.append(f"{where}: registered as node {attempt.node!r}, whose "
                                 "launcher did not list it")
        for (number, attempt_number), nodes in sorted(self._listed.items()):
            if len(nodes) > 1:
                found.append(f"rank {number} attempt {attempt_number}: listed by the "
                             f"launchers of nodes {', '.join(sorted(nodes))}")
        final = self._final
        for node in sorted(self._nodes.values(), key=lambda n: n.node):
            if not node.attempts or max(node.attempts) >= final:
                continue
            last = node.attempts[max(node.attempts)]
            where = f"node {node.node}: last in attempt {last.attempt} ({last.state})"
            if last.state == "SUCCEEDED":
                found.append(f"{where}, which ended the job there, yet attempt {final} "
                             "followed")
            elif not self.elastic:
                found.append(f"{where}, not in the final attempt {final}: the world size is "
                             f"fixed ({self.world_size}), so a later attempt cannot judge the "
                             "job without it")
            elif last.state not in _ENDED \
                    and self._heard.get(node.node, 0) > self._opened_at.get(final, 0):
                found.append(f"{where}: still reporting after attempt {final} began, "
                             "without a part in it, and never said its attempt ended")
        return found

    def _binding_disagreements(self) -> list[str]:
        """A rank that claims one node while another node's launcher lists it as its own.

        The launcher's list (platform data) binds a rank to the node that started it;
        a rank's own claim of a node id is tenant data and cannot move it elsewhere.
        """
        launched: dict[tuple[int, int], set[str]] = {}
        for node in self._nodes.values():
            for record in node.attempts.values():
                for listed in record.ranks:
                    launched.setdefault((listed, record.attempt), set()).add(node.node)
        found = []
        for rank in self._ranks.values():
            for number, attempt in sorted(rank.attempts.items()):
                nodes = launched.get((rank.rank, number), set())
                if nodes and attempt.node not in nodes:
                    found.append(f"rank {rank.rank} attempt {number}: registered as node "
                                 f"{attempt.node!r}, launched by node(s) "
                                 f"{', '.join(sorted(nodes))}")
        return found

    def _rank_record(self, rank: _Rank, completed: bool, *, refs: bool) -> dict[str, Any]:
        """The ``rank/<r>`` record (``records.RankRecord``'s format), as a dict: its
        shards are written straight from the merge's state, 65,536 ranks x 10 shards
        without a dataclass each. With ``refs`` (a ledger's record, version 3) shards
        refer to their input and files leave out the digest their artifact holds."""
        attempts = tuple(
            records.RankAttempt(
                attempt=number, node=attempt.node, run_id=attempt.run_id,
                registered=attempt.registered, workers=tuple(sorted(attempt.workers)),
                exit_code=attempt.completed[0] if attempt.completed else None,
                state=attempt.completed[1] if attempt.completed else "NO_COMPLETION_REPORTED",
                relayed_by=attempt.relayed_by)
            for number, attempt in sorted(rank.attempts.items()))
        shards = [shard for _, shard in sorted(rank.shards.items(),
                                               key=lambda item: (item[1].input.name, str(item[0])))]
        inline = len(shards) <= _INLINE_SHARDS
        root = None
        if not inline:
            digests = hashlib.sha256()
            for shard in shards:
                digests.update(json.dumps(shard.input.digest, sort_keys=True).encode())
            root = {"sha256": digests.hexdigest()}
        files = rank.files
        if refs:
            files = [(a, p, alg, "" if self._artifacts[a].files[p][0] == d else d)
                     for a, p, alg, d in files]
        record = records.RankRecord(
            rank=rank.rank, node=attempts[-1].node if attempts else "", completed=completed,
            attempts=attempts, events=rank.events, shard_count=len(shards),
            samples=sum(s.samples for s in shards), shards=() if inline else None,
            shards_root=root,
            files=tuple(records.FileWritten(artifact=a, path=p, algorithm=alg, digest=d)
                        for a, p, alg, d in files),
            inventory=rank.inventory, reported=dict(rank.reported)).to_dict()
        if inline and refs:
            record["formatVersion"] = records.REFERENCE_VERSION
            record["shards"] = [shard.ref_dict() for shard in shards]
        elif inline:
            record["shards"] = [shard.to_dict() for shard in shards]
        return record


def _signal_name(code: int) -> str:
    """``"SIGKILL, "`` for -9 (a process a signal ended, as launchers report it)."""
    if code >= 0:
        return ""
    try:
        return f"{signal.Signals(-code).name}, "
    except ValueError:
        return f"signal {-code}, "


def _json_bytes(record: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a record the merge built (no floats: every sender's JSON but
    its parameters, which are no record, was parsed with floats refused), in a
    right-sized copy: orjson's own buffer is allocated for the worst case and kept so."""
    return bytes(memoryview(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)))


def _byproduct(name: str, media_type: str,
               record: records.RankRecord | records.NodeRecord | records.Checkpoint
               | records.Completeness) -> ResourceDescriptor:
    return record_descriptor(name=name, media_type=media_type, record=record.to_dict())
