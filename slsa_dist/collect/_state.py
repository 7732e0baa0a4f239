"""The job's state: the pure application of authorized events.

What reaches this module was checked whole by ``collect._ingest`` (every claim against
``collect._authority``, every bound of :class:`Limits`) before any of it is applied, so
an apply cannot refuse: it changes the state, and the only exception it lets through is
a sealed record that cannot be read back (the record store failed), raised before it
changes anything. No protobuf (events arrive as the typed values below), no I/O beyond
the record store it is handed, no clocks (times come with the events).

The state answers the queries the coordinator and the ingest ask (who registered,
which attempt is final, who listed which rank); ``collect._assemble`` turns it into
records and ONE Statement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from slsa_dist.model import _records as records
from slsa_dist.model._digests import file_digest
from slsa_dist.model._statement import ResourceDescriptor

__all__ = [
    "ENDED", "FINAL_ROLES", "INLINE_SHARDS", "Annotated", "AttemptReported", "Batch",
    "CaptureGapReported", "Completed", "DependencyDeclared", "DuplicateClaim", "Event",
    "EvidenceAppraised", "FileReported", "FilesPlanned", "Gap", "InventoryReported",
    "LeftOut", "Limits", "MemoryRecords", "NodeJoined", "ParametersReported", "RankJoined",
    "RecordStore", "Registered", "ShardRead", "State", "digest_key", "json_bytes",
]

# Artifact roles (the wire's ArtifactRole, named at ingest) that make a subject.
FINAL_ROLES = ("final", "output")
# A rank record lists its shards inline up to this many; beyond it the record
# carries a count and a root digest (the shards themselves are dependencies).
INLINE_SHARDS = 256
# How a node's part in an attempt can end: the job's end, or torchrun restarting its
# workers (after a failure, or for a membership change).
ENDED = ("SUCCEEDED", "FAILED", "RESTARTED")


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


@dataclass(frozen=True)
class Registered:
    sender: str
    next_sequence: int
    new: bool  # False when this repeated an earlier registration (nothing to journal)


# -- the authorized events (what ingest hands the state) -----------------------------------


@dataclass(frozen=True, slots=True)
class NodeJoined:
    node: str
    hostname: str
    node_rank: int
    peer: str
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class RankJoined:
    """A new (rank, attempt, worker) sender; ``charged`` is the principal whose sender
    budget it takes."""

    rank: int
    attempt: int
    worker: int
    world_size: int
    node: str
    run_id: str
    pid: int
    relayed_by: str
    charged: str
    now: dt.datetime

    @property
    def key(self) -> str:
        return f"rank/{self.rank}/{self.attempt}/{self.worker}"


@dataclass(frozen=True, slots=True)
class DuplicateClaim:
    """A second process registering a (rank, attempt, worker) another one holds: refused
    (``ALREADY_EXISTS``) and kept, as a conflict of the job. ``first`` and ``second``
    are the claimants' (node, run id, pid)."""

    key: str
    rank: int
    attempt: int
    worker: int
    first: tuple[Any, ...]
    second: tuple[Any, ...]

    def line(self) -> str:
        return (f"rank {self.rank} attempt {self.attempt} worker {self.worker}: claimed by "
                f"two processes: (node, run id, pid) {self.first} and {self.second}")


@dataclass(frozen=True, slots=True)
class ShardRead:
    """``digest`` is the sender's map as received (copied only when it makes an input);
    ``key`` its hashable form (:func:`digest_key`)."""

    name: str
    uri: str
    digest: Mapping[str, str]
    key: Any
    samples: int
    epoch: int
    index_digest: str
    sampler: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FileReported:
    artifact: str
    path: str
    algorithm: str
    digest: str
    size: int
    role: str


@dataclass(frozen=True, slots=True)
class FilesPlanned:
    artifact: str
    role: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DependencyDeclared:
    descriptor: ResourceDescriptor


@dataclass(frozen=True, slots=True)
class LeftOut:
    """What a sender sent that the statement cannot carry, said as a conflict."""

    line: str


@dataclass(frozen=True, slots=True)
class ParametersReported:
    external: Mapping[str, Any]  # redacted already
    internal: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class InventoryReported:
    inventory: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EvidenceAppraised:
    record: records.EvidenceRecord


@dataclass(frozen=True, slots=True)
class Annotated:
    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class AttemptReported:
    attempt: int
    run_id: str
    ranks: tuple[int, ...]
    state: str
    exit_codes: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Completed:
    exit_code: int
    state: str


@dataclass(frozen=True, slots=True)
class CaptureGapReported:
    text: str  # "what (why)", cut to Limits.max_capture_gap_chars
    allowed: bool


@dataclass(frozen=True, slots=True)
class Gap:
    """Events the agent dropped, or the coordinator lost, before the next one."""

    dropped: int
    lost: int


Event = (ShardRead | FileReported | FilesPlanned | DependencyDeclared | LeftOut
         | ParametersReported | InventoryReported | EvidenceAppraised | Annotated
         | AttemptReported | Completed | CaptureGapReported | Gap)


@dataclass(frozen=True, slots=True)
class Batch:
    """The new events of one accepted batch, ``count`` of them on the wire (a
    :class:`Gap` rides before the event that carried it and is not counted)."""

    sender: str
    start: int
    count: int
    events: tuple[Event, ...]
    now: dt.datetime


# -- what the state holds ------------------------------------------------------------------


@dataclass(slots=True)
class Sender:
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
    capture_gaps: int = 0  # reported; the first few are listed in State.capture_gaps


class Input:
    """A shard any rank read, once for the job: numbered as first read (the ledger's
    ``input/<n>``), with the first rank that read it and the sampler it was read with."""

    __slots__ = ("digest", "first_rank", "name", "ref", "sampler", "uri")

    def __init__(self, *, name: str, uri: str, digest: dict[str, str], ref: int,
                 first_rank: int, sampler: Mapping[str, Any]) -> None:
        self.name, self.uri, self.digest = name, uri, digest
        self.ref, self.first_rank, self.sampler = ref, first_rank, sampler


_EMPTY_CHAIN = hashlib.sha256(b"").hexdigest()  # a shard read without index digests


class Shard:
    """One shard as one rank read it: kept for every (rank, shard), so it is compact
    (slots; its name and digest are its input's, shared with every other rank that read
    it; the epochs one span, a set only when read out of order)."""

    __slots__ = ("chain", "events", "first", "input", "last", "others", "sampler", "samples")

    def __init__(self, source: Input) -> None:
        self.input = source
        self.samples = 0
        self.events = 0
        self.first = self.last = -1  # the epochs read, first..last, while contiguous
        self.others: set[int] | None = None  # every epoch, once they were not
        # The index digests in order, chained: SHA-256(chain || index digest) per read. A
        # chain (not one running hash) can be picked up again from the record it wrote.
        self.chain = b""
        self.sampler: Mapping[str, Any] = {}

    def add_index(self, index_digest: str) -> None:
        self.chain = hashlib.sha256(self.chain + index_digest.encode()).digest()

    @property
    def index_digest(self) -> str:
        return self.chain.hex() if self.chain else _EMPTY_CHAIN

    @classmethod
    def from_record(cls, data: Mapping[str, Any], source: Input) -> Shard:
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
                                       sampler=dict(self.sampler))

    def ref_dict(self) -> dict[str, Any]:
        """This read in a ledger's rank record: its input's number, not its name and digest;
        its sampler only where it differs from the input's."""
        shared = self.input.sampler
        same = self.sampler is shared or self.sampler == shared
        return records.shard_ref_dict(ref=self.input.ref, samples=self.samples,
                                      reads=self.events,
                                      epochs=self._epochs(), index_digest=self.index_digest,
                                      sampler=None if same else dict(self.sampler))


@dataclass(slots=True)
class Attempt:
    attempt: int
    node: str
    run_id: str
    registered: str
    workers: set[int] = field(default_factory=set)
    completed: tuple[int, str] | None = None
    relayed_by: str = ""


@dataclass(slots=True)
class Rank:
    rank: int
    attempts: dict[int, Attempt] = field(default_factory=dict)
    shards: dict[Any, Shard] = field(default_factory=dict)  # by digest_key
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
class Node:
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
class Artifact:
    name: str
    role: str
    order: int
    # path -> (digest, size, rank that wrote it)
    files: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    algorithm: str = "sha256"
    planned: set[str] = field(default_factory=set)
    conflicts: list[str] = field(default_factory=list)


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


_MAX_DUPLICATE_CLAIMS = 1024  # claimants named in the completeness record; past it, a count


def _spans(values: set[int]) -> tuple[tuple[int, int], ...]:
    """``{0, 1, 2, 5}`` -> ``((0, 2), (5, 5))``: epochs read stay small in the record."""
    spans: list[list[int]] = []
    for value in sorted(values):
        if spans and value == spans[-1][1] + 1:
            spans[-1][1] = value
        else:
            spans.append([value, value])
    return tuple((first, last) for first, last in spans)


def _timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest_key(digest: Mapping[str, str]) -> Any:
    """A hashable key for a digest map: its one SHA-256 as is (the usual case, without
    sorting a protobuf map through the abstract Mapping methods), else its sorted items."""
    if len(digest) == 1 and "sha256" in digest:
        return digest["sha256"]
    return tuple(sorted(digest.items()))


def json_bytes(record: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a record the merge built (no floats: every sender's JSON but
    its parameters, which are no record, was parsed with floats refused), in a
    right-sized copy: orjson's own buffer is allocated for the worst case and kept so."""
    return bytes(memoryview(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)))


class State:
    """Everything accepted for one job. Its fields are read by ``collect._ingest`` (to
    check the next message against them) and ``collect._assemble``; only the ``add_*``
    and :meth:`apply` methods here change them."""

    def __init__(self, *, job_id: str, world_size: int, min_world_size: int, run_id: str,
                 limits: Limits, records: RecordStore) -> None:
        self.job_id = job_id
        self.run_id = run_id  # with the job id, the globally unique invocationId
        self.world_size = world_size  # the operator's, never a rank's (contract rule 2)
        self.min_world_size = min_world_size
        self.limits = limits
        # Where sealed rank records are kept (in memory unless the caller gives a store;
        # the coordinator keeps them in a file, so 65,536 of them cost no memory).
        self.records = records
        self.senders: dict[str, Sender] = {}
        self.ranks: dict[int, Rank] = {}
        self.nodes: dict[str, Node] = {}
        self.artifacts: dict[str, Artifact] = {}
        self.dependencies: list[ResourceDescriptor] = []
        self.external: dict[str, Any] = {}
        self.internal: dict[str, Any] = {}
        self.conflicts: list[str] = []
        # Second processes that claimed a rank another holds, each claimant once (bounded:
        # past the cap, a count), in arrival order (a replay gives the same order).
        self.duplicate_claims: dict[tuple[str, tuple[Any, ...]], DuplicateClaim] = {}
        self.duplicate_claims_over = 0
        self.started: dt.datetime | None = None
        self.last: dt.datetime | None = None
        self.finalized: tuple[str, dt.datetime] | None = None
        self.events = 0
        # Kept as events arrive, never rescanned (the per-event cost stays flat): each
        # rank's latest attempt, and the ranks whose latest attempt ended / succeeded.
        self.latest: dict[int, int] = {}
        self.ended: set[int] = set()
        self.succeeded: set[int] = set()
        # Each attempt's world size (set by its first rank), the final attempt so far, and
        # how many ranks below its world size ended / succeeded (recounted only when a
        # new attempt begins, so the per-event cost stays flat).
        self.attempt_world: dict[int, int] = {}
        # Every shard any rank read, once, numbered as first read (a replay reads them in
        # the same order): with the first rank that read it, and its number by
        # (name, uri, digest). Rank records in a ledger refer to them by that number, and
        # those that are data (not an index space) are the job's dataset dependencies.
        self.inputs: list[Input] = []
        self.input_refs: dict[tuple[str, str, Any], int] = {}
        self.final = -1
        self.ended_below = 0
        self.succeeded_below = 0
        # (sender key, rank, "what (why)", allowed), in arrival order per sender
        self.capture_gaps: list[tuple[str, int, str, bool]] = []
        # The launchers' view (collect._authority): which node(s) listed each (rank,
        # attempt), which nodes opened each attempt and when (an arrival number, the
        # coordinator's own observation), and when each node (its own sender or one of
        # its ranks') was last heard from. Once any launcher reported an attempt, only
        # launchers open attempts and bind ranks to nodes.
        self.listed: dict[tuple[int, int], set[str]] = {}
        self.opened: dict[int, set[str]] = {}
        self.opened_at: dict[int, int] = {}
        self.heard: dict[str, int] = {}
        self.arrivals = 0
        # Senders registered per principal (Limits.max_senders_per_principal).
        self.charged: dict[str, int] = {}

    # -- queries ------------------------------------------------------------------------

    @property
    def elastic(self) -> bool:
        return self.min_world_size != self.world_size

    @property
    def final_world_size(self) -> int:
        """The world size of the final attempt (the operator's until a rank registers)."""
        return self.attempt_world.get(self.final, self.world_size)

    def completed_ranks(self) -> set[int]:
        """Ranks whose latest attempt's main process completed successfully; with
        launchers, only in the final attempt and listed there by the node it ran on."""
        if not self.opened:
            return self.succeeded
        final = self.final
        return {r for r in self.succeeded if self.latest.get(r) == final
                and self.ranks[r].attempts[final].node in self.listed.get((r, final), ())}

    def missing_ranks(self) -> list[int]:
        done = self.completed_ranks()
        return [r for r in range(self.final_world_size) if r not in done]

    def nodes_finished(self) -> bool:
        """Every node still in the job reported a terminal state for its latest attempt;
        a node whose latest attempt is before the final one left the job (died, or
        was not rejoined) and is not waited for."""
        for node in self.nodes.values():
            if not node.attempts:
                return False
            latest = max(node.attempts)
            state = node.attempts[latest].state
            if latest < self.final:
                # In an earlier attempt: finished once it said that attempt ended; one
                # that never did (dead, or still training) is waited for until settle.
                if state not in ENDED:
                    return False
                continue
            if state not in ("SUCCEEDED", "FAILED"):
                return False
        return True

    # -- registrations --------------------------------------------------------------------

    def add_duplicate_claim(self, claim: DuplicateClaim, now: dt.datetime) -> bool:
        """Keep a refused second claim on a rank; True when it is new (to journal)."""
        which = (claim.key, claim.second)
        del now  # refused: the job's times are those of what it accepted
        if which in self.duplicate_claims:
            return False
        if len(self.duplicate_claims) >= _MAX_DUPLICATE_CLAIMS:
            self.duplicate_claims_over += 1
            return False  # counted, never journaled: a restart may count fewer
        self.duplicate_claims[which] = claim
        return True

    def _touch(self, now: dt.datetime) -> None:
        if self.started is None:
            self.started = now
        self.last = now

    def _hear(self, node: str) -> None:
        """The coordinator heard from ``node`` (its sender, or one of its ranks')."""
        self.arrivals += 1
        self.heard[node] = self.arrivals

    def add_challenge(self, node: str, nonce: bytes, now: dt.datetime, *,
                      tpm_challenge: bytes = b"") -> None:
        self.nodes[node].nonces.append(nonce)
        if tpm_challenge:
            self.nodes[node].tpm_challenges[nonce] = tpm_challenge
        self._touch(now)

    def add_node(self, joined: NodeJoined) -> Registered:
        key = f"node/{joined.node}"
        self.senders[key] = Sender(key=key, identity=(joined.hostname, joined.node_rank),
                                   rank=None, attempt=0, node=joined.node)
        self.nodes[joined.node] = Node(node=joined.node, hostname=joined.hostname,
                                       node_rank=joined.node_rank, peer=joined.peer)
        self._touch(joined.now)
        return Registered(key, 1, new=True)

    def add_rank(self, joined: RankJoined) -> Registered:
        rank = self.ranks.get(joined.rank)
        if rank is not None and rank.sealed is not None:
            self.unseal(rank)  # first: a record that cannot be read back changes nothing
        key = joined.key
        self.charged[joined.charged] = self.charged.get(joined.charged, 0) + 1
        self.senders[key] = Sender(key=key, identity=(joined.node, joined.run_id, joined.pid),
                                   rank=joined.rank, attempt=joined.attempt, node=joined.node)
        rank = self.ranks.setdefault(joined.rank, Rank(rank=joined.rank))
        rank.open_senders += 1
        attempt = rank.attempts.get(joined.attempt)
        if attempt is None:
            attempt = rank.attempts[joined.attempt] = Attempt(
                attempt=joined.attempt, node=joined.node, run_id=joined.run_id,
                registered=_timestamp(joined.now), relayed_by=joined.relayed_by)
        attempt.workers.add(joined.worker)
        self.attempt_world.setdefault(joined.attempt, joined.world_size)
        if joined.attempt > self.latest.get(joined.rank, -1):  # a new attempt: not ended yet
            self.latest[joined.rank] = joined.attempt
            below = joined.rank < self.final_world_size
            if joined.rank in self.ended:
                self.ended.discard(joined.rank)
                self.ended_below -= below
            if joined.rank in self.succeeded:
                self.succeeded.discard(joined.rank)
                self.succeeded_below -= below
        if joined.attempt > self.final and not self.opened:
            # Without launchers the ranks' highest attempt is the final one; with them,
            # only a launcher opens one (_attempt).
            self._set_final(joined.attempt)
        self._hear(joined.node)
        self._touch(joined.now)
        return Registered(key, 1, new=True)

    def _set_final(self, attempt: int) -> None:
        """A new final attempt, maybe of another size: the counts below its world size
        are counted again (once per attempt, so the per-event cost stays flat)."""
        self.final = attempt
        world = self.final_world_size
        self.ended_below = sum(1 for r in self.ended if r < world)
        self.succeeded_below = sum(1 for r in self.succeeded if r < world)

    def finalize(self, reason: str, now: dt.datetime) -> None:
        if self.finalized is None:
            self.finalized = (reason or "request", now)

    # -- events ---------------------------------------------------------------------------

    def apply(self, batch: Batch) -> None:
        """Apply a batch ingest accepted whole."""
        sender = self.senders[batch.sender]
        rank = self.ranks[sender.rank] if sender.rank is not None else None
        for event in batch.events:
            # A shard read (nine events in ten) straight to its apply; the rest through
            # the handler table.
            if rank is not None and type(event) is ShardRead:
                rank.events += 1
                self._shard(rank, event)
            elif type(event) is Gap:
                sender.dropped += event.dropped
                sender.lost += event.lost
            else:
                if rank is not None:
                    rank.events += 1
                self._APPLY[type(event)](self, sender, event)
        sender.next_sequence += batch.count
        sender.events += batch.count
        self.events += batch.count
        self._hear(sender.node)
        if sender.completed is not None and rank is not None:
            self._seal(rank)
        self._touch(batch.now)

    def _shard(self, rank: Rank, read: ShardRead) -> None:
        state = rank.shards.get(read.key)
        if state is None:
            state = rank.shards[read.key] = Shard(self._input(read, rank.rank))
        state.samples += read.samples
        state.events += 1
        state.add_epoch(read.epoch)
        if read.index_digest:
            state.add_index(read.index_digest)
        if read.sampler:
            state.sampler = read.sampler

    def _shard_from(self, sender: Sender, read: ShardRead) -> None:
        assert sender.rank is not None  # ingest: shards come from ranks
        self._shard(self.ranks[sender.rank], read)

    def _input(self, read: ShardRead, rank: int) -> Input:
        """The job's input for a shard, made when first read."""
        key = (read.name, read.uri, read.key)
        ref = self.input_refs.get(key)
        if ref is None:
            ref = self.input_refs[key] = len(self.inputs)
            self.inputs.append(Input(name=read.name, uri=read.uri, digest=dict(read.digest),
                                     ref=ref, first_rank=rank, sampler=read.sampler or {}))
        return self.inputs[ref]

    def _file(self, sender: Sender, written: FileReported) -> None:
        artifact = self._artifact(written.artifact, written.role)
        artifact.algorithm, digest = written.algorithm, written.digest
        previous = artifact.files.get(written.path)
        if previous is not None and previous[0] != digest:
            artifact.conflicts.append(f"{written.path}: {previous[0][:16]} (rank {previous[2]}) "
                                      f"vs {digest[:16]} ({sender.key})")
            earlier = self.ranks.get(previous[2])
            if earlier is not None and earlier.sealed is not None:
                # Its record left the digest out as the artifact's: reopen it while the
                # artifact still holds that digest, so the record keeps it.
                self.unseal(earlier)
        path = written.path
        artifact.files[path] = (digest, written.size, -1 if sender.rank is None else sender.rank)
        if sender.rank is not None:
            self.ranks[sender.rank].files.append((artifact.name, path, artifact.algorithm,
                                                  digest))

    def _planned(self, sender: Sender, plan: FilesPlanned) -> None:
        del sender
        self._artifact(plan.artifact, plan.role).planned.update(plan.files)

    def _artifact(self, name: str, role: str) -> Artifact:
        artifact = self.artifacts.get(name)
        if artifact is None:
            artifact = self.artifacts[name] = Artifact(name=name, role=role,
                                                       order=len(self.artifacts))
        elif role in FINAL_ROLES and artifact.role not in FINAL_ROLES:
            artifact.role = role
        return artifact

    def _dependency(self, sender: Sender, dependency: DependencyDeclared) -> None:
        del sender
        self.dependencies.append(dependency.descriptor)

    def _left_out(self, sender: Sender, left_out: LeftOut) -> None:
        del sender
        self.conflicts.append(left_out.line)

    def _parameters(self, sender: Sender, params: ParametersReported) -> None:
        self._merge_parameters(self.external, params.external, sender.key)
        self._merge_parameters(self.internal, params.internal, sender.key)

    def _merge_parameters(self, into: dict[str, Any], new: Mapping[str, Any], who: str) -> None:
        for key, value in new.items():
            if key in into and into[key] != value:
                self.conflicts.append(f"{key}: {json.dumps(into[key])[:60]} vs "
                                      f"{json.dumps(value)[:60]} ({who})")
                continue
            into[key] = value

    def _inventory(self, sender: Sender, inventory: InventoryReported) -> None:
        if sender.rank is not None:
            rank = self.ranks[sender.rank]
            if rank.inventory is None:
                rank.inventory = inventory.inventory
        else:
            self.nodes[sender.node].inventory = inventory.inventory

    def _evidence(self, sender: Sender, evidence: EvidenceAppraised) -> None:
        self.nodes[sender.node].evidence.append(evidence.record)

    def _annotation(self, sender: Sender, note: Annotated) -> None:
        if sender.rank is not None:
            self.ranks[sender.rank].reported[note.key] = note.value
        else:
            self.nodes[sender.node].reported[note.key] = note.value

    def _attempt(self, sender: Sender, attempt: AttemptReported) -> None:
        # The launcher's claims (collect._authority): it opened this attempt and started
        # these ranks on its node. A registration that contradicts them is refused from
        # now on; one that came before is judged at finalization.
        first = not self.opened
        opened = self.opened.setdefault(attempt.attempt, set())
        if not opened:
            self.opened_at[attempt.attempt] = self.arrivals
        opened.add(sender.node)
        for listed in attempt.ranks:
            self.listed.setdefault((listed, attempt.attempt), set()).add(sender.node)
        if first or attempt.attempt > self.final:  # from the first launcher on, theirs
            self._set_final(attempt.attempt)
        attempts = self.nodes[sender.node].attempts
        earlier = attempts.get(attempt.attempt)  # STARTED, then the final state: keep both's
        attempts[attempt.attempt] = records.NodeAttempt(
            attempt=attempt.attempt, run_id=attempt.run_id,
            ranks=tuple(sorted({*(earlier.ranks if earlier else ()), *attempt.ranks})),
            state=attempt.state,
            exit_codes={**(earlier.exit_codes if earlier else {}), **attempt.exit_codes})
        if attempt.state in ("SUCCEEDED", "FAILED"):
            self._ended_by_launcher(attempt.attempt, attempt.exit_codes)

    def _ended_by_launcher(self, attempt: int, exit_codes: Mapping[str, int]) -> None:
        """The launcher saw these ranks' processes exit: they ended, whatever they said
        (a rank SIGKILLed, by the OOM killer say, says nothing), so the job need not
        wait for them. Never a success: only a rank's own report is that."""
        world = self.final_world_size
        for key in exit_codes:
            if not key.lstrip("-").isdigit():
                continue
            number = int(key)
            if number in self.ended or self.latest.get(number, attempt) != attempt:
                continue
            self.ended.add(number)
            self.ended_below += number < world

    def _completed(self, sender: Sender, done: Completed) -> None:
        assert sender.rank is not None  # ingest: completion comes from ranks
        sender.completed = (done.exit_code, done.state)
        self.ranks[sender.rank].open_senders -= 1
        worker = int(sender.key.rsplit("/", 1)[1])
        if worker == 0:
            self.ranks[sender.rank].attempts[sender.attempt].completed = sender.completed
            if sender.attempt == self.latest.get(sender.rank):
                below = sender.rank < self.final_world_size
                if sender.rank not in self.ended:
                    self.ended.add(sender.rank)
                    self.ended_below += below
                if done.exit_code == 0 and sender.rank not in self.succeeded:
                    self.succeeded.add(sender.rank)
                    self.succeeded_below += below

    def _capture_gap(self, sender: Sender, gap: CaptureGapReported) -> None:
        assert sender.rank is not None  # ingest: capture gaps come from ranks
        sender.capture_gaps += 1
        if sender.capture_gaps <= self.limits.max_capture_gaps_per_sender:
            self.capture_gaps.append((sender.key, sender.rank, gap.text, gap.allowed))

    # type of event -> its apply. A new kind: one event type and one apply above, one line
    # here, its check in collect._ingest.
    _APPLY: Mapping[type, Any] = {
        ShardRead: _shard_from, FileReported: _file, FilesPlanned: _planned,
        DependencyDeclared: _dependency, LeftOut: _left_out, ParametersReported: _parameters,
        InventoryReported: _inventory, EvidenceAppraised: _evidence, Annotated: _annotation,
        AttemptReported: _attempt, Completed: _completed, CaptureGapReported: _capture_gap,
    }

    # -- sealed rank records ----------------------------------------------------------------

    def _seal(self, rank: Rank) -> None:
        """Write a rank's record once its every sender completed (see ``Rank.sealed``);
        a rank with more shards than a record lists keeps its details."""
        if rank.open_senders or rank.sealed is not None or len(rank.shards) > INLINE_SHARDS:
            return
        completed = rank.rank in self.succeeded
        try:
            rank.sealed = self.records.put(
                json_bytes(self.rank_record(rank, completed, refs=True)))
        except OSError:  # the store could not take it (disk full): keep the details
            return
        rank.sealed_completed = completed
        rank.shards, rank.files, rank.inventory, rank.reported = {}, [], None, {}

    def unseal(self, rank: Rank) -> None:
        """A sealed rank's details again, from the record it wrote (a new attempt or
        worker registered after all its senders had completed)."""
        assert rank.sealed is not None
        record = orjson.loads(self.records.get(rank.sealed))
        rank.shards = {}
        for data in record.get("shards") or ():
            shard = Shard.from_record(data, self.inputs[data["input"]])
            rank.shards[digest_key(shard.input.digest)] = shard
        rank.files = []
        for f in record.get("files") or ():
            artifact = self.artifacts[f["artifact"]]
            # Left out where it was the artifact's own (and a rank whose file another
            # overwrote was reopened first, so the artifact still holds it).
            found = file_digest(f)
            digest = None if found is None else found[1]
            rank.files.append((artifact.name, f["path"], artifact.algorithm,
                               artifact.files[f["path"]][0] if digest is None else digest))
        rank.inventory = record.get("inventory")
        rank.reported = dict(record.get("reported") or {})
        rank.sealed = None

    def rank_record(self, rank: Rank, completed: bool, *, refs: bool) -> dict[str, Any]:
        """The ``rank/<r>`` record (``records.RankRecord``'s format), as a dict: its
        shards are written straight from the state, 65,536 ranks x 10 shards without a
        dataclass each. With ``refs`` (a ledger's record, version 3) shards refer to
        their input and files leave out the digest their artifact holds. Here, not in
        ``collect._assemble``, because a sealed rank is kept as this record."""
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
        inline = len(shards) <= INLINE_SHARDS
        root = None
        if not inline:
            digests = hashlib.sha256()
            for shard in shards:
                digests.update(json.dumps(shard.input.digest, sort_keys=True).encode())
            root = {"sha256": digests.hexdigest()}
        files = rank.files
        if refs:
            files = [(a, p, alg, "" if self.artifacts[a].files[p][0] == d else d)
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
