"""Ingest: wire messages in, typed and authorized events out, before any state changes.

Every check of a message lives here: its job, its principal against the one
authorization table (``collect._authority``), its bounds (``Limits``), its sequence
numbers, and every event's content (digests, JSON depth and integers, paths). A check
reads the state (``collect._state``) and never changes it; what it returns is what the
state applies, converted from protobuf once, here, so nothing past this module sees a
wire type. A refusal raises :class:`~slsa_dist.errors.SenderError` naming its status,
what was expected and what was found. A batch is checked whole before any of it is
applied (contract rule 5, ``collect._merge``).

Evidence is appraised here, too: the verdict on a blob answering the coordinator's
nonce is what the state records (the verifier is pure: blob, nonce, job, node).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.attest._verdict import UNAVAILABLE, Appraisal, EvidenceVerdict, EvidenceVerifier
from slsa_dist.collect import _authority as authority
from slsa_dist.collect._authority import Principal
from slsa_dist.collect._state import (
    Annotated,
    AttemptReported,
    Batch,
    CaptureGapReported,
    Completed,
    DependencyDeclared,
    DuplicateClaim,
    Event,
    EvidenceAppraised,
    FileReported,
    FilesPlanned,
    Gap,
    InventoryReported,
    LeftOut,
    Limits,
    NodeJoined,
    ParametersReported,
    RankJoined,
    Registered,
    Sender,
    ShardRead,
    State,
    digest_key,
)
from slsa_dist.errors import InputError, SenderError
from slsa_dist.model import _records as records
from slsa_dist.model._digests import FILE_ALGORITHMS, check_digest
from slsa_dist.model._statement import ResourceDescriptor, redact_parameters, redact_url

__all__ = ["Ingest", "no_verifier", "reject"]

# JSON a sender may nest: inventories and parameters are a few levels deep; past this
# the parser's own stack is at stake.
_MAX_JSON_DEPTH = 64
# Integers every verifier reads alike: JavaScript and Go's JSON decoders use doubles.
_MAX_SAFE_INTEGER = 2**53 - 1
# The wire's ArtifactRole by name; a value this coordinator does not know is no subject.
_ROLES = {pb.CHECKPOINT: "checkpoint", pb.FINAL: "final", pb.OUTPUT: "output",
          pb.AUXILIARY: "auxiliary"}


def reject(code: str, message: str, *, resync: bool = False) -> SenderError:
    return SenderError(message, code=code, resync=resync)


def no_verifier(kind: str, blob: bytes, nonce: bytes, job_id: str, node: str, /, *,
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


def _json_object(text: str, what: str, limit: int, *, floats: bool = False
                 ) -> dict[str, Any]:
    """A sender's JSON object, bounded; floats refused unless ``floats`` (parameters
    keep their JSON types; records, and so the ledger, never hold a float)."""
    if not text:
        return {}
    if len(text) > limit:
        raise reject("RESOURCE_EXHAUSTED",
                     f"{what}: expected at most {limit} bytes of JSON, found {len(text)}")
    try:
        value = (_FLOAT_DECODER if floats else _DECODER).decode(text)
    except RecursionError:
        value = None  # the depth check below names it
    except ValueError as exc:
        raise reject("INVALID_ARGUMENT", f"{what}: expected a JSON object, found {exc}") from None
    if value is None or _depth(value) > _MAX_JSON_DEPTH:
        raise reject("INVALID_ARGUMENT", f"{what}: expected JSON nested at most "
                     f"{_MAX_JSON_DEPTH} levels, found it nested deeper than that")
    if not isinstance(value, dict):
        raise reject("INVALID_ARGUMENT",
                     f"{what}: expected a JSON object, found {type(value).__name__}")
    return value


def _check_digest(digest: Mapping[str, str], what: str) -> None:
    if not digest:
        raise reject("INVALID_ARGUMENT", f"{what}: expected a digest, found none")
    try:
        check_digest(digest, what)
    except InputError as exc:
        raise reject("INVALID_ARGUMENT", str(exc)) from None


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


class Ingest:
    """The checks of one job's messages against its :class:`State`: each returns the
    typed event the state applies, or raises and changes nothing."""

    def __init__(self, state: State, *, evidence_verifier: EvidenceVerifier = no_verifier
                 ) -> None:
        self.state = state
        self.limits: Limits = state.limits
        self._verify_evidence = evidence_verifier
        self._seen_digests = _Seen()
        self._seen_samplers = _Seen(4_096)
        # Ranks each attempt record of the batch being checked listed (attempt -> ranks):
        # a later record of the same batch may name their exit codes.
        self._batch_listed: dict[int, set[int]] = {}

    def check_open(self, job_id: str) -> None:
        state = self.state
        if job_id != state.job_id:
            raise reject("NOT_FOUND", f"job id: expected {state.job_id!r}, found {job_id!r}")
        if state.finalized is not None:
            raise reject("FAILED_PRECONDITION",
                         f"job {state.job_id!r}: expected an open job, found it finalized "
                         f"({state.finalized[0]})")

    def challenge(self, job_id: str, node_id: str, principal: Principal) -> None:
        self.check_open(job_id)
        authority.authorize_node(principal, node_id, "challenge")
        node = self.state.nodes.get(node_id)
        if node is None:
            raise reject("FAILED_PRECONDITION",
                         f"challenge: expected node {node_id!r} to be registered, found it not")
        if len(node.nonces) >= self.limits.max_challenges_per_node:
            raise reject("RESOURCE_EXHAUSTED", f"challenge: expected at most "
                         f"{self.limits.max_challenges_per_node} per node, found node "
                         f"{node_id!r} asking for more")

    def register_node(self, req: pb.RegisterNodeRequest, now: dt.datetime, *, peer: str,
                      principal: Principal) -> NodeJoined | Registered:
        """A new node, or the :class:`Registered` answer of the registration it repeats."""
        self.check_open(req.job_id)
        if not req.node_id:
            raise reject("INVALID_ARGUMENT", "node id: expected a non-empty string, found ''")
        authority.authorize_node(principal, req.node_id)
        key = f"node/{req.node_id}"
        identity = (req.hostname, req.node_rank)
        existing = self.state.senders.get(key)
        if existing is not None:
            if existing.identity != identity:
                raise reject("ALREADY_EXISTS",
                             f"node {req.node_id!r}: registered as (hostname, node rank) "
                             f"{existing.identity}, found {identity}")
            return Registered(key, existing.next_sequence, new=False)
        if len(self.state.nodes) >= self.limits.max_world_size:
            raise reject("RESOURCE_EXHAUSTED", f"node {req.node_id!r}: expected at most "
                         f"{self.limits.max_world_size} nodes, found more")
        return NodeJoined(node=req.node_id, hostname=req.hostname, node_rank=req.node_rank,
                          peer=peer, now=now)

    def register_rank(self, req: pb.RegisterRankRequest, now: dt.datetime, *,
                      relayed_by: str, principal: Principal
                      ) -> RankJoined | Registered | DuplicateClaim:
        """A new (rank, attempt, worker) sender, the :class:`Registered` answer of the
        registration it repeats, or the :class:`DuplicateClaim` of another process;
        ``relayed_by`` names the node agent that relayed it (which must be the node the
        rank names)."""
        self.check_open(req.job_id)
        if relayed_by and relayed_by != req.node_id:
            raise reject("PERMISSION_DENIED", f"rank {req.rank}: expected node "
                         f"{relayed_by!r} to relay its own ranks only, found a rank of node "
                         f"{req.node_id!r}")
        authority.authorize_rank(principal, req.rank, req.node_id)
        state = self.state
        if req.world_size == 0 or req.world_size > self.limits.max_world_size:
            raise reject("INVALID_ARGUMENT", "world size: expected 1.."
                         f"{self.limits.max_world_size}, found {req.world_size}")
        if not state.min_world_size <= req.world_size <= state.world_size:
            expected = (f"{state.min_world_size}..{state.world_size}" if state.elastic
                        else f"{state.world_size}")
            raise reject("FAILED_PRECONDITION",
                         f"world size: expected {expected}, found {req.world_size}")
        first = state.attempt_world.get(req.attempt)
        if first is not None and first != req.world_size:
            raise reject("FAILED_PRECONDITION",
                         f"attempt {req.attempt}: world size expected {first} (as its first "
                         f"rank registered), found {req.world_size}")
        if req.rank >= req.world_size:
            raise reject("OUT_OF_RANGE",
                         f"rank: expected 0..{req.world_size - 1}, found {req.rank}")
        if not req.node_id:
            raise reject("INVALID_ARGUMENT", f"rank {req.rank}: expected the id of the node "
                         "that launched it, found ''")
        key = f"rank/{req.rank}/{req.attempt}/{req.worker}"
        identity = (req.node_id, req.run_id, req.pid)
        existing = state.senders.get(key)
        if existing is not None:
            if existing.identity != identity:
                # Refused, and kept: two processes claimed the same (rank, attempt,
                # worker). A restart is a new attempt (its launcher numbers it); the
                # same attempt again from another process is a conflict of the job.
                return DuplicateClaim(key=key, rank=req.rank, attempt=req.attempt,
                                      worker=req.worker, first=existing.identity,
                                      second=identity)
            return Registered(key, existing.next_sequence, new=False)
        self._check_binding(req)
        charged = principal.kind + "/" + principal.name if not principal.trusted \
            else f"node/{req.node_id}"
        if principal is not authority.REPLAY:  # bounded when first accepted
            self._check_budget(req, charged)
        return RankJoined(rank=req.rank, attempt=req.attempt, worker=req.worker,
                          world_size=req.world_size, node=req.node_id, run_id=req.run_id,
                          pid=req.pid, relayed_by=relayed_by, charged=charged, now=now)

    def _check_binding(self, req: pb.RegisterRankRequest) -> None:
        """A worker joins its (rank, attempt) only from the node the rank runs on: the
        node it was first registered under, and the node whose launcher lists it."""
        where = f"rank {req.rank} attempt {req.attempt}"
        state = self.state
        rank = state.ranks.get(req.rank)
        attempt = rank.attempts.get(req.attempt) if rank is not None else None
        if attempt is not None and attempt.node != req.node_id:
            raise reject("PERMISSION_DENIED", f"{where} runs on node {attempt.node!r}: "
                         f"expected its workers from there, found one from node "
                         f"{req.node_id!r}")
        listed = state.listed.get((req.rank, req.attempt), set())
        if listed and req.node_id not in listed:
            raise reject("PERMISSION_DENIED", f"{where}: expected node "
                         f"{', '.join(sorted(listed))} (its launcher lists it), found node "
                         f"{req.node_id!r}")
        node = state.nodes.get(req.node_id)
        record = node.attempts.get(req.attempt) if node is not None else None
        if record is not None and req.rank not in record.ranks:
            raise reject("PERMISSION_DENIED", f"{where}: node {req.node_id!r} launched "
                         f"rank(s) {list(record.ranks)} in attempt {req.attempt}, not this "
                         "one")
        if attempt is not None and len(attempt.workers) >= self.limits.max_workers_per_rank:
            raise reject("RESOURCE_EXHAUSTED", f"{where}: expected at most "
                         f"{self.limits.max_workers_per_rank} workers, found more")

    def _check_budget(self, req: pb.RegisterRankRequest, charged: str) -> None:
        if self.state.charged.get(charged, 0) >= self.limits.max_senders_per_principal:
            raise reject("RESOURCE_EXHAUSTED", f"rank {req.rank}: expected at most "
                         f"{self.limits.max_senders_per_principal} senders registered by "
                         f"{charged}, found more")

    def batch(self, req: pb.ReportRequest, now: dt.datetime, *,
              principal: Principal) -> Batch:
        """The new events of a batch, checked whole; a batch of events all accepted
        before is a duplicate (``start == count``, no events)."""
        self.check_open(req.job_id)
        sender = self.state.senders.get(req.sender)
        if sender is None:
            raise reject("FAILED_PRECONDITION",
                         f"sender: expected a registered sender, found {req.sender!r}",
                         resync=True)
        authority.authorize_sender(principal, req.sender, sender.rank, sender.node)
        count = len(req.events)
        if count > self.limits.max_batch_events:
            raise reject("RESOURCE_EXHAUSTED", f"batch: expected at most "
                         f"{self.limits.max_batch_events} events, found {count}")
        if req.first_sequence < 1:
            raise reject("INVALID_ARGUMENT",
                         f"first sequence: expected 1 or more, found {req.first_sequence}")
        if req.first_sequence > sender.next_sequence:
            raise reject("FAILED_PRECONDITION",
                         f"sequence gap from {req.sender}: expected {sender.next_sequence}, "
                         f"found {req.first_sequence}", resync=True)
        start = sender.next_sequence - req.first_sequence
        if start >= count:
            return Batch(sender=sender.key, start=count, count=0, events=(), now=now)
        new = req.events[start:]
        if sender.events + len(new) > self.limits.max_events_per_sender:
            raise reject("RESOURCE_EXHAUSTED", f"{req.sender}: expected at most "
                         f"{self.limits.max_events_per_sender} events, found more")
        return Batch(sender=sender.key, start=start, count=len(new),
                     events=self._events(sender, new), now=now)

    def _events(self, sender: Sender, events: Sequence[pb.Event]) -> tuple[Event, ...]:
        """Check every event first; return the typed events, so JSON is read once."""
        typed: list[Event] = []
        self._batch_listed = {}
        completed = sender.completed is not None
        from_rank = sender.rank is not None
        for index, event in enumerate(events):
            where = f"{sender.key} event {index}"
            if completed:
                raise reject("FAILED_PRECONDITION",
                             f"{where}: expected nothing after RankCompleted, found more events")
            if event.dropped_before or event.lost_before:
                typed.append(Gap(event.dropped_before, event.lost_before))
            kind = event.WhichOneof("kind")
            if kind == "shard":  # nine events in ten: no table lookup
                typed.append(self._shard(sender, event.shard, where))
                continue
            if kind is None or kind not in self._CHECKS:
                raise reject("INVALID_ARGUMENT", f"{where}: expected an event kind, found none")
            authority.authorize_event(kind, from_rank, where)
            typed.append(self._CHECKS[kind](self, sender, getattr(event, kind), where))
            completed = kind == "completed"
        return tuple(typed)

    # -- one check per event kind (dispatched by _CHECKS) --------------------------------
    # A check raises SenderError and changes nothing; it returns the typed event.

    def _shard(self, sender: Sender, shard: pb.ShardConsumed, where: str) -> ShardRead:
        authority.authorize_event("shard", sender.rank is not None, where)
        # Every rank reads the same shards with the same sampler: each digest and sampler
        # text is checked once, then recognised (the parsed sampler is never mutated).
        key = digest_key(shard.digest)
        if self._seen_digests.get(key) is None:
            _check_digest(shard.digest, f"{where} shard {shard.name!r}")
            self._seen_digests.put(key, True)
        if shard.sampler_json:
            sampler = self._seen_samplers.get(shard.sampler_json)
            if sampler is None:
                sampler = self._seen_samplers.put(shard.sampler_json, _json_object(
                    shard.sampler_json, f"{where} sampler", self.limits.max_json_bytes))
        else:
            sampler = dict(shard.sampler)  # an agent before sampler_json: every value a string
        return ShardRead(name=shard.name, uri=shard.uri, digest=shard.digest, key=key,
                         samples=shard.samples, epoch=shard.epoch,
                         index_digest=shard.index_digest, sampler=sampler)

    def _file(self, sender: Sender, file: pb.FileWritten, where: str) -> FileReported:
        del sender
        _check_digest(file.digest, f"{where} file {file.path!r}")
        algorithms = sorted(file.digest)
        if len(algorithms) != 1 or algorithms[0] not in FILE_ALGORITHMS:
            raise reject("INVALID_ARGUMENT", f"{where} file {file.path!r}: expected one digest "
                         f"of {list(FILE_ALGORITHMS)}, found {algorithms}")
        if not file.artifact:
            raise reject("INVALID_ARGUMENT", f"{where}: file without an artifact name")
        if not file.path or file.path.startswith("/") or ".." in file.path.split("/"):
            raise reject("INVALID_ARGUMENT", f"{where}: expected a relative path inside "
                         f"the artifact, found {file.path!r}")
        known = self.state.artifacts.get(file.artifact)
        if known is not None and known.files and known.algorithm != algorithms[0]:
            raise reject("INVALID_ARGUMENT", f"{where} file {file.path!r}: expected "
                         f"{known.algorithm} like the rest of artifact {file.artifact!r}, "
                         f"found {algorithms[0]}")
        if known is not None and len(known.files) >= self.limits.max_artifact_files:
            raise reject("RESOURCE_EXHAUSTED", f"{where}: artifact has "
                         f"{self.limits.max_artifact_files} files already")
        (algorithm, digest), = file.digest.items()
        return FileReported(artifact=file.artifact, path=file.path, algorithm=algorithm,
                            digest=digest, size=file.size, role=_ROLES.get(file.role, ""))

    def _planned(self, sender: Sender, plan: pb.ArtifactPlanned, where: str) -> FilesPlanned:
        del sender
        if not plan.artifact:
            raise reject("INVALID_ARGUMENT", f"{where}: plan without an artifact name")
        return FilesPlanned(artifact=plan.artifact, role=_ROLES.get(plan.role, ""),
                            files=tuple(plan.files))

    def _dependency(self, sender: Sender, dep: pb.Dependency, where: str
                    ) -> DependencyDeclared | LeftOut:
        annotations = _json_object(dep.annotations_json, f"{where} dependency annotations",
                                   self.limits.max_json_bytes)
        if dep.digest:
            _check_digest(dep.digest, f"{where} dependency {dep.name!r}")
        elif not dep.uri:
            raise reject("INVALID_ARGUMENT", f"{where} dependency {dep.name!r}: "
                         "expected a uri or a digest, found neither")
        try:
            return DependencyDeclared(ResourceDescriptor(
                name=dep.name or None, uri=redact_url(dep.uri) or None, digest=dict(dep.digest),
                annotations={**annotations, "slsadist_kind": dep.kind or "other"}))
        except InputError as exc:  # what the descriptor refuses: said, the rest goes on
            return LeftOut(f"{sender.key}: dependency {dep.name!r} left out: {exc}")

    def _parameters(self, sender: Sender, params: pb.Parameters, where: str
                    ) -> ParametersReported:
        del sender
        limit = self.limits.max_json_bytes
        # Redacted as they come in (a rank may send them raw): neither a conflict message
        # nor the statement carries a credential (ProvenanceBuilder redacts once more).
        return ParametersReported(
            external=redact_parameters(_json_object(params.external_json,
                                                    f"{where} external parameters", limit,
                                                    floats=True)),
            internal=redact_parameters(_json_object(params.internal_json,
                                                    f"{where} internal parameters", limit,
                                                    floats=True)))

    def _inventory(self, sender: Sender, inventory: pb.Inventory, where: str
                   ) -> InventoryReported:
        del sender
        return InventoryReported(_json_object(inventory.json, f"{where} inventory",
                                              self.limits.max_json_bytes))

    def _evidence(self, sender: Sender, evidence: pb.Evidence, where: str) -> EvidenceAppraised:
        del where  # a rank must not speak for a node's hardware: _events refused it
        # An oversized blob is recorded as failed evidence, not refused: the node must not
        # be able to hide its other events behind it.
        oversized = len(evidence.blob) > self.limits.max_evidence_bytes
        return EvidenceAppraised(self._appraise(sender, evidence, oversized=oversized))

    def _appraise(self, sender: Sender, evidence: pb.Evidence, *,
                  oversized: bool) -> records.EvidenceRecord:
        """The evidence record: the verifier's verdict on a blob answering our nonce."""
        blob = evidence.blob
        unissued = False
        # The credential challenge the coordinator issued with this nonce (TPM evidence):
        # recorded beside the evidence, opening included, so anyone re-checks activation.
        challenge = self.state.nodes[sender.node].tpm_challenges.get(evidence.nonce, b"") \
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
        elif evidence.nonce not in self.state.nodes[sender.node].nonces:
            verdict = EvidenceVerdict(status="failed", reason=(
                f"nonce: expected one issued to node {sender.node!r} for job "
                f"{self.state.job_id!r}, found {evidence.nonce.hex()[:32] or 'none'}"))
            unissued = True
        else:
            try:
                if challenge:
                    verdict = self._verify_evidence(evidence.kind, blob, evidence.nonce,
                                                    self.state.job_id, sender.node,
                                                    appraisal=Appraisal(challenge=challenge))
                else:
                    verdict = self._verify_evidence(evidence.kind, blob, evidence.nonce,
                                                    self.state.job_id, sender.node)
            except Exception as exc:  # a verifier bug must not take the coordinator down
                verdict = EvidenceVerdict(status="failed",
                                          reason=f"verifier raised {type(exc).__name__}: {exc}")
        # The raw evidence travels with the verdict (not for oversized blobs): anyone can
        # re-appraise it from the nonce, job and node in the signed statement. A nonce
        # this coordinator did not issue is not recorded: re-appraised against it, evidence
        # made whenever the node liked would verify (the nonce is our word, not the node's).
        return record(status=verdict.status, verified=tuple(verdict.verified),
                      not_verified=tuple(verdict.not_verified), reason=verdict.reason,
                      claims=dict(verdict.claims),
                      blob="" if oversized else base64.b64encode(blob).decode(),
                      nonce="" if oversized or unissued else evidence.nonce.hex())

    def _annotation(self, sender: Sender, note: pb.Annotation, where: str) -> Annotated:
        del sender
        if not note.key:
            raise reject("INVALID_ARGUMENT", f"{where}: annotation without a key")
        return Annotated(note.key, _json_object(
            '{"v":' + (note.value_json or "null") + "}", f"{where} annotation {note.key!r}",
            self.limits.max_json_bytes)["v"])

    def _attempt(self, sender: Sender, attempt: pb.AttemptRecord, where: str
                 ) -> AttemptReported:
        attempts = self.state.nodes[sender.node].attempts
        if attempt.attempt not in attempts \
                and len(attempts) >= self.limits.max_attempts_per_node:
            raise reject("RESOURCE_EXHAUSTED", f"{where}: expected at most "
                         f"{self.limits.max_attempts_per_node} attempts per node, found more")
        beyond = [r for r in attempt.ranks if r >= self.state.world_size]
        if beyond:
            raise reject("OUT_OF_RANGE", f"{where}: expected ranks 0..{self.state.world_size - 1}"
                         f" launched, found {beyond[:8]}")
        listed = self._batch_listed.setdefault(attempt.attempt, set())
        listed.update(attempt.ranks)
        earlier = attempts.get(attempt.attempt)
        authority.authorize_exit_codes(sender.node, attempt.attempt, attempt.exit_codes,
                                       {*listed, *(earlier.ranks if earlier else ())}, where)
        return AttemptReported(attempt=attempt.attempt, run_id=attempt.run_id,
                               ranks=tuple(attempt.ranks), state=attempt.state,
                               exit_codes={str(k): v for k, v in attempt.exit_codes.items()})

    def _completed(self, sender: Sender, done: pb.RankCompleted, where: str) -> Completed:
        del sender, where  # from a rank's sender: _events checked it
        return Completed(exit_code=done.exit_code, state=done.state)

    def _capture_gap(self, sender: Sender, gap: pb.CaptureGap, where: str
                     ) -> CaptureGapReported:
        del sender  # from a rank's sender: _events checked it
        if not gap.what:
            raise reject("INVALID_ARGUMENT", f"{where}: capture gap without what it names")
        limit = self.limits.max_capture_gap_chars
        text = f"{gap.what} ({gap.why})" if gap.why else gap.what
        if len(text) > limit:
            text = text[:limit] + "..."
        return CaptureGapReported(text=text, allowed=gap.allowed)

    # kind of event (the oneof field's name) -> its check. A new kind: one check here, its
    # event and apply in collect._state, one row in collect._authority.EVENT_CLAIMS, one
    # message in proto/slsa_dist/v1/collector.proto.
    _CHECKS: ClassVar[dict[str, Callable[..., Event]]] = {
        "shard": _shard,
        "file": _file,
        "planned": _planned,
        "dependency": _dependency,
        "parameters": _parameters,
        "inventory": _inventory,
        "evidence": _evidence,
        "annotation": _annotation,
        "attempt": _attempt,
        "completed": _completed,
        "capture_gap": _capture_gap,
    }
