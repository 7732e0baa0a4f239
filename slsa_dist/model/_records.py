"""The byproduct records of a provenance, typed: the signed format of docs/buildtype.md.

One frozen dataclass per record (rank, node, evidence, attempt, checkpoint,
completeness). Every producer (the merge, ``slsa-dist run``) builds them and
writes them with ``to_dict``; every consumer (verify, attestation policy,
reports) reads them with ``from_dict`` instead of ``.get()`` on a dict.

* **Strict writes.** ``to_dict`` emits exactly the documented keys of
  :data:`FORMAT_VERSION`, camelCase, numbers as numbers.
* **Tolerant reads.** ``from_dict`` ignores keys it does not know, fills what
  is missing with an empty value, and reads every earlier format: version 1
  (no ``formatVersion``) sent sampler parameters as strings and kept what a
  rank or node reported under ``annotations``, inside the byproduct's own
  ``annotations``; version 2 keeps them under ``reported``.
* **Stored once.** In a record ledger a rank record is version 3
  (:data:`REFERENCE_VERSION`): each shard names its ``input/<n>`` line (name,
  digest, sampler, written once for every rank that read it) and a file leaves
  out the digest its checkpoint record lists. :func:`resolve_inputs` gives the
  shards their names and digests back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from slsa_dist.model._digests import SUBJECT_ALGORITHM, file_digest

__all__ = ["FORMAT_VERSION", "INDEX_URI", "LEDGER_KINDS", "MEDIA_CHECKPOINT", "MEDIA_COMPLETENESS",
           "MEDIA_INPUT", "MEDIA_NODE", "MEDIA_RANK", "REFERENCE_VERSION", "Checkpoint",
           "Completeness", "EvidenceRecord", "FileWritten", "NodeAttempt", "NodeRecord",
           "RankAttempt", "RankRecord", "ShardRead", "input_dict", "resolve_inputs",
           "shard_read_dict", "shard_ref_dict"]

# 2: typed sampler parameters; what a rank or node reported under "reported".
FORMAT_VERSION = 2
# Zero-code capture counts sampler indices against this pseudo-shard (capture/auto.py): an
# index space, not data, so never a dependency.
INDEX_URI = "slsa-dist:index/"
# 3: a rank record in a ledger, whose shards refer to the ledger's input lines and whose
# files leave out the digest their checkpoint record lists.
REFERENCE_VERSION = 3

# Each record's media type and the name prefix of its byproduct (or ledger line),
# beside the class that reads it (RankRecord.MEDIA_TYPE, RankRecord.PREFIX).
MEDIA_RANK = "application/vnd.slsa-dist.rank.v1+json"
MEDIA_NODE = "application/vnd.slsa-dist.node.v1+json"
MEDIA_CHECKPOINT = "application/vnd.slsa-dist.checkpoint.v1+json"
MEDIA_COMPLETENESS = "application/vnd.slsa-dist.completeness.v1+json"
# A shard any rank read, once, in a record ledger (rank records there refer to it).
MEDIA_INPUT = "application/vnd.slsa-dist.input.v1+json"
# The records a ledger may hold, by media type: the kind their names start with.
LEDGER_KINDS = {MEDIA_RANK: "rank", MEDIA_NODE: "node", MEDIA_CHECKPOINT: "checkpoint",
                MEDIA_INPUT: "input"}


def _int(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else default
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else "" if value is None else str(value)


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(data, key))


def _maps(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [v for v in _list(data, key) if isinstance(v, Mapping)]


def _typed(value: str) -> Any:
    """A version-1 sampler parameter (always a string) as the value it stood for."""
    if value in ("True", "False"):
        return value == "True"
    if value == "None":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    return value


def _reported(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "formatVersion" in data:
        return _map(data, "reported")
    return _map(data, "annotations")  # version 1


def shard_read_dict(*, name: str, digest: Mapping[str, str], samples: int, reads: int,
                    epochs: Sequence[Sequence[int]], index_digest: str,
                    sampler: Mapping[str, Any]) -> dict[str, Any]:
    """A :class:`ShardRead`'s record: the one definition of its format (the merge writes
    65,536 ranks' shards through it without building the dataclass)."""
    out = _read_counts(samples, reads, epochs, index_digest)
    out["name"], out["digest"] = name, dict(digest)
    if sampler:
        out["sampler"] = dict(sampler)
    return out


def shard_ref_dict(*, ref: int, samples: int, reads: int, epochs: Sequence[Sequence[int]],
                   index_digest: str, sampler: Mapping[str, Any] | None) -> dict[str, Any]:
    """A shard read in a version-3 rank record: ``input`` is the number of the ledger's
    ``input/<n>`` line that names it; ``sampler`` is written only where it differs from
    that line's (None: the same)."""
    out = _read_counts(samples, reads, epochs, index_digest)
    out["input"] = ref
    if sampler is not None:
        out["sampler"] = dict(sampler)
    return out


def _read_counts(samples: int, reads: int, epochs: Sequence[Sequence[int]],
                 index_digest: str) -> dict[str, Any]:
    return {"samples": samples, "reads": reads, "epochs": [list(span) for span in epochs],
            "indexDigest": index_digest}


def input_dict(*, name: str, uri: str, digest: Mapping[str, str],
               sampler: Mapping[str, Any]) -> dict[str, Any]:
    """An ``input/<n>`` ledger record: a shard any rank read, written once."""
    out: dict[str, Any] = {"name": name, "digest": dict(digest)}
    if uri:
        out["uri"] = uri
    if sampler:
        out["sampler"] = dict(sampler)
    return out


def resolve_inputs(record: Mapping[str, Any],
                   inputs: Callable[[int], Mapping[str, Any] | None]) -> dict[str, Any]:
    """A rank record with each shard's ``input`` reference replaced by what that input
    line says (its name and digest; its sampler unless the shard has its own).

    Raises:
        ValueError: a reference names no input line.
    """
    shards = record.get("shards")
    if not isinstance(shards, list) or not any(isinstance(s, Mapping) and "input" in s
                                               for s in shards):
        return dict(record)
    resolved = []
    for shard in shards:
        if not isinstance(shard, Mapping) or "input" not in shard:
            resolved.append(shard)
            continue
        ref = shard["input"]
        base = inputs(ref) if isinstance(ref, int) and not isinstance(ref, bool) else None
        if base is None:
            raise ValueError(f"rank {record.get('rank')}: expected a shard to name an input "
                             f"line of the ledger, found input {ref!r}, which it lacks")
        entry = {k: v for k, v in shard.items() if k != "input"}
        entry["name"], entry["digest"] = base.get("name", ""), base.get("digest", {})
        sampler = shard.get("sampler", base.get("sampler"))
        entry.pop("sampler", None)
        if sampler:
            entry["sampler"] = sampler
        resolved.append(entry)
    return {**record, "shards": resolved}


@dataclass(frozen=True, kw_only=True)
class ShardRead:
    """A data shard one rank consumed, summed over its epochs."""

    name: str
    digest: Mapping[str, str]
    samples: int = 0
    reads: int = 0
    epochs: tuple[tuple[int, int], ...] = ()  # inclusive spans: {0, 1, 2, 5} -> (0, 2), (5, 5)
    index_digest: str = ""
    sampler: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return shard_read_dict(name=self.name, digest=self.digest, samples=self.samples,
                               reads=self.reads, epochs=self.epochs,
                               index_digest=self.index_digest, sampler=self.sampler)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, version: int = FORMAT_VERSION) -> ShardRead:
        sampler = dict(_map(data, "sampler"))
        if version < 2:
            sampler = {k: _typed(v) if isinstance(v, str) else v for k, v in sampler.items()}
        epochs = tuple((int(s[0]), int(s[1])) for s in _list(data, "epochs")
                       if isinstance(s, list) and len(s) == 2)
        return cls(name=_str(data, "name"), digest=dict(_map(data, "digest")),
                   samples=_int(data, "samples"), reads=_int(data, "reads"), epochs=epochs,
                   index_digest=_str(data, "indexDigest"), sampler=sampler)


@dataclass(frozen=True, kw_only=True)
class FileWritten:
    """One file of an artifact, as the rank that wrote it reported it. ``digest`` is
    empty where a ledger's rank record refers to its checkpoint record for it."""

    artifact: str
    path: str
    algorithm: str
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """Without a digest (version 3) the file's digest is its checkpoint record's."""
        out = {"artifact": self.artifact, "path": self.path}
        if self.digest:
            out[self.algorithm] = self.digest
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileWritten:
        algorithm, digest = file_digest(data) or (SUBJECT_ALGORITHM, "")
        return cls(artifact=_str(data, "artifact"), path=_str(data, "path"),
                   algorithm=algorithm, digest=digest)


@dataclass(frozen=True, kw_only=True)
class RankAttempt:
    """One attempt of a rank: where it ran and how its main process ended."""

    attempt: int
    node: str
    run_id: str = ""
    registered: str = ""
    workers: tuple[int, ...] = ()
    state: str = "NO_COMPLETION_REPORTED"
    exit_code: int | None = None
    # The node agent that relayed this attempt's registration and events (its trust
    # unit, ADR 0010); empty when the rank reported to the coordinator itself.
    relayed_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempt": self.attempt, "node": self.node, "runId": self.run_id,
                               "registered": self.registered, "workers": list(self.workers),
                               "state": self.state}
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.relayed_by:
            out["relayedBy"] = self.relayed_by
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RankAttempt:
        exit_code = data.get("exitCode")
        return cls(attempt=_int(data, "attempt"), node=_str(data, "node"),
                   run_id=_str(data, "runId"), registered=_str(data, "registered"),
                   workers=tuple(int(w) for w in _list(data, "workers") if isinstance(w, int)),
                   state=_str(data, "state") or "NO_COMPLETION_REPORTED",
                   exit_code=exit_code if isinstance(exit_code, int) else None,
                   relayed_by=_str(data, "relayedBy"))


@dataclass(frozen=True, kw_only=True)
class RankRecord:
    """``rank/<r>``: what one rank consumed and wrote, over all its attempts.

    ``shards`` is inline up to a bound; beyond it ``shards_root`` (a digest over
    the shard digests) stands for the list and ``shards`` is None.
    """

    MEDIA_TYPE: ClassVar[str] = MEDIA_RANK
    PREFIX: ClassVar[str] = "rank/"

    rank: int
    node: str
    completed: bool
    attempts: tuple[RankAttempt, ...] = ()
    events: int = 0
    shard_count: int = 0
    samples: int = 0
    shards: tuple[ShardRead, ...] | None = ()
    shards_root: Mapping[str, str] | None = None
    files: tuple[FileWritten, ...] = ()
    inventory: Mapping[str, Any] | None = None
    reported: Mapping[str, Any] = field(default_factory=dict)  # tenant-reported key/values

    def nodes(self) -> set[str]:
        """Every node an attempt of this rank ran on."""
        return {a.node for a in self.attempts if a.node}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formatVersion": FORMAT_VERSION, "rank": self.rank,
                               "node": self.node, "completed": self.completed,
                               "attempts": [a.to_dict() for a in self.attempts],
                               "events": self.events, "shardCount": self.shard_count,
                               "samples": self.samples}
        if self.shards is not None:
            out["shards"] = [s.to_dict() for s in self.shards]
        if self.shards_root is not None:
            out["shardsRoot"] = dict(self.shards_root)
        if self.files:
            out["files"] = [f.to_dict() for f in self.files]
        if self.inventory is not None:
            out["inventory"] = dict(self.inventory)
        if self.reported:
            out["reported"] = dict(self.reported)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RankRecord:
        version = _int(data, "formatVersion", 1)
        reported = dict(_reported(data))
        inventory = data.get("inventory")
        if version < 2 and "inventory" in reported:  # v1 kept a rank's inventory there
            inventory = reported.pop("inventory")
        root = data.get("shardsRoot")
        return cls(
            rank=_int(data, "rank", -1), node=_str(data, "node"),
            completed=data.get("completed") is True,
            attempts=tuple(RankAttempt.from_dict(a) for a in _maps(data, "attempts")),
            events=_int(data, "events"), shard_count=_int(data, "shardCount"),
            samples=_int(data, "samples"),
            shards=(tuple(ShardRead.from_dict(s, version=version) for s in _maps(data, "shards"))
                    if "shards" in data or root is None else None),
            shards_root=dict(root) if isinstance(root, Mapping) else None,
            files=tuple(FileWritten.from_dict(f) for f in _maps(data, "files")),
            inventory=dict(inventory) if isinstance(inventory, Mapping) else None,
            reported=reported)


@dataclass(frozen=True, kw_only=True)
class EvidenceRecord:
    """One piece of a node's hardware evidence and what the coordinator made of it."""

    kind: str
    status: str  # verified, failed, unverified, unavailable
    format: str = ""
    sha256: str = ""
    size: int = 0
    verified: tuple[str, ...] = ()
    not_verified: tuple[str, ...] = ()
    reason: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    # The evidence itself (base64) and the nonce it answers (hex): with them anyone
    # re-appraises the evidence; the status above is the coordinator's verdict only.
    blob: str = ""
    nonce: str = ""
    # TPM: the credential challenge the coordinator issued with the nonce, its opening
    # included (the coordinator's record; anyone re-makes it from the EK certificate).
    tpm_challenge: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "format": self.format, "sha256": self.sha256,
                               "size": self.size, "status": self.status,
                               "verified": list(self.verified),
                               "notVerified": list(self.not_verified), "reason": self.reason}
        if self.claims:
            out["claims"] = dict(self.claims)
        if self.blob:
            out["blob"] = self.blob
            out["nonce"] = self.nonce
        if self.tpm_challenge:
            out["tpmChallenge"] = dict(self.tpm_challenge)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidenceRecord:
        return cls(kind=_str(data, "kind"), status=_str(data, "status"),
                   format=_str(data, "format"), sha256=_str(data, "sha256"),
                   size=_int(data, "size"), verified=_strings(data, "verified"),
                   not_verified=_strings(data, "notVerified"), reason=_str(data, "reason"),
                   claims=dict(_map(data, "claims")), blob=_str(data, "blob"),
                   nonce=_str(data, "nonce"), tpm_challenge=dict(_map(data, "tpmChallenge")))


@dataclass(frozen=True, kw_only=True)
class NodeAttempt:
    """One attempt as the node's launcher saw it: its ranks and how each exited."""

    attempt: int
    run_id: str = ""
    ranks: tuple[int, ...] = ()
    state: str = ""
    exit_codes: Mapping[str, int] = field(default_factory=dict)  # global rank -> exit code

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "runId": self.run_id, "ranks": list(self.ranks),
                "state": self.state,
                "exitCodes": {k: self.exit_codes[k] for k in sorted(self.exit_codes)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeAttempt:
        codes = {str(k): v for k, v in _map(data, "exitCodes").items() if isinstance(v, int)}
        return cls(attempt=_int(data, "attempt"), run_id=_str(data, "runId"),
                   ranks=tuple(r for r in _list(data, "ranks") if isinstance(r, int)),
                   state=_str(data, "state"), exit_codes=codes)


_NODE_KEYS = frozenset({"formatVersion", "node", "hostname", "nodeRank", "evidence",
                        "challenges", "attempts", "reported", "annotations",
                        "connectedFrom"})


@dataclass(frozen=True, kw_only=True)
class NodeRecord:
    """``node/<id>``: a node's identity, inventory, evidence and attempts.

    ``inventory`` (devices, software, host) is written at the top level of the
    record beside the fixed keys, as docs/buildtype.md shows it. ``connected_from``
    is the address the coordinator saw the node register from (its own
    observation; everything else here is the node's report or its evidence).
    """

    MEDIA_TYPE: ClassVar[str] = MEDIA_NODE
    PREFIX: ClassVar[str] = "node/"

    node: str
    hostname: str = ""
    node_rank: int = 0
    connected_from: str = ""
    evidence: tuple[EvidenceRecord, ...] = ()
    challenges: int = 0
    attempts: tuple[NodeAttempt, ...] = ()
    inventory: Mapping[str, Any] = field(default_factory=dict)
    reported: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formatVersion": FORMAT_VERSION, "node": self.node,
                               "hostname": self.hostname, "nodeRank": self.node_rank,
                               **({"connectedFrom": self.connected_from}
                                  if self.connected_from else {}),
                               "evidence": [e.to_dict() for e in self.evidence],
                               "challenges": self.challenges,
                               "attempts": [a.to_dict() for a in self.attempts]}
        out.update({k: v for k, v in self.inventory.items() if k not in _NODE_KEYS})
        if self.reported:
            out["reported"] = dict(self.reported)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeRecord:
        return cls(node=_str(data, "node"), hostname=_str(data, "hostname"),
                   node_rank=_int(data, "nodeRank"),
                   connected_from=_str(data, "connectedFrom"),
                   evidence=tuple(EvidenceRecord.from_dict(e) for e in _maps(data, "evidence")),
                   challenges=_int(data, "challenges"),
                   attempts=tuple(NodeAttempt.from_dict(a) for a in _maps(data, "attempts")),
                   inventory={k: v for k, v in data.items() if k not in _NODE_KEYS},
                   reported=dict(_reported(data)))


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """``checkpoint/<name>``: every file of an artifact by digest (an OMS manifest).

    ``role``, ``written_by`` and ``expected_files`` come from a distributed job
    (which rank wrote which file, which files the save planned); a single-step
    provenance has none of them.
    """

    MEDIA_TYPE: ClassVar[str] = MEDIA_CHECKPOINT
    PREFIX: ClassVar[str] = "checkpoint/"

    name: str
    root_digest: Mapping[str, str]
    serialization: Mapping[str, Any]
    resources: tuple[Mapping[str, Any], ...]
    total_bytes: int = 0
    role: str = ""
    written_by: Mapping[str, int] = field(default_factory=dict)
    expected_files: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formatVersion": FORMAT_VERSION, "name": self.name,
                               "rootDigest": dict(self.root_digest),
                               "serialization": dict(self.serialization),
                               "resources": [dict(r) for r in self.resources],
                               "totalBytes": self.total_bytes}
        if self.role:
            out["role"] = self.role
        if self.written_by:
            out["writtenBy"] = {p: self.written_by[p] for p in sorted(self.written_by)}
        if self.expected_files is not None:
            out["expectedFiles"] = list(self.expected_files)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        expected = data.get("expectedFiles")
        return cls(name=_str(data, "name"), root_digest=dict(_map(data, "rootDigest")),
                   serialization=dict(_map(data, "serialization")),
                   resources=tuple(_maps(data, "resources")),
                   total_bytes=_int(data, "totalBytes"), role=_str(data, "role"),
                   written_by={str(k): v for k, v in _map(data, "writtenBy").items()
                               if isinstance(v, int)},
                   expected_files=(tuple(str(p) for p in expected)
                                   if isinstance(expected, list) else None))


@dataclass(frozen=True, kw_only=True)
class Completeness:
    """``completeness``: what the job should have reported and did not, said out loud."""

    MEDIA_TYPE: ClassVar[str] = MEDIA_COMPLETENESS
    PREFIX: ClassVar[str] = "completeness"

    complete: bool
    finalized_by: str = ""
    missing_ranks: tuple[int, ...] = ()
    missing_files: tuple[str, ...] = ()
    failed_evidence: tuple[str, ...] = ()
    sequence_gaps: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    events: int = 0
    # False when the job recorded no output at all (its subject then stands for the run
    # itself); None in records written before this was recorded.
    outputs_recorded: bool | None = None
    # Membership per attempt: {"attempt", "worldSize", "nodes": {node: how its part
    # ended (SUCCEEDED, FAILED, RESTARTED) or "NO_FINAL_REPORT"}, "ranksSucceeded"}; and
    # the nodes that took part in an earlier attempt but not the final one (a node that
    # died, and how it was last seen).
    attempts: tuple[Mapping[str, Any], ...] = ()
    departed_nodes: tuple[str, ...] = ()
    # What capture inside a rank could not follow (``rank R: capture gap: what (why)``):
    # the training went on as without capture. These make the job incomplete; the
    # allowed ones (the job set SLSA_ALLOW_CAPTURE_GAPS=1) are listed and do not.
    capture_gaps: tuple[str, ...] = ()
    allowed_capture_gaps: tuple[str, ...] = ()
    # The ranks of the final attempt that exited non-zero, by their own report or their
    # launcher's (``rank R attempt A: exit N (STATE); node X saw exit M``): a job with
    # one is not a successful job.
    failed_ranks: tuple[str, ...] = ()

    @property
    def problems(self) -> list[tuple[str, Sequence[Any]]]:
        """(label, entries) for every non-empty gap, in a fixed order."""
        found: list[tuple[str, Sequence[Any]]] = [
            ("failed ranks", self.failed_ranks),
            ("missing ranks", self.missing_ranks), ("missing checkpoint files", self.missing_files),
            ("failed evidence", self.failed_evidence), ("event gaps", self.sequence_gaps),
            ("conflicts", self.conflicts), ("capture gaps", self.capture_gaps)]
        return [(label, entries) for label, entries in found if entries]

    def to_dict(self) -> dict[str, Any]:
        return {"formatVersion": FORMAT_VERSION, "complete": self.complete,
                "finalizedBy": self.finalized_by, "missingRanks": list(self.missing_ranks),
                "missingFiles": list(self.missing_files),
                "failedEvidence": list(self.failed_evidence),
                "sequenceGaps": list(self.sequence_gaps), "conflicts": list(self.conflicts),
                "events": self.events, "outputsRecorded": self.outputs_recorded,
                **({"attempts": [dict(a) for a in self.attempts]} if self.attempts else {}),
                **({"departedNodes": list(self.departed_nodes)} if self.departed_nodes
                   else {}),
                **({"captureGaps": list(self.capture_gaps)} if self.capture_gaps else {}),
                **({"allowedCaptureGaps": list(self.allowed_capture_gaps)}
                   if self.allowed_capture_gaps else {}),
                **({"failedRanks": list(self.failed_ranks)} if self.failed_ranks else {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completeness:
        return cls(complete=data.get("complete") is True, finalized_by=_str(data, "finalizedBy"),
                   missing_ranks=tuple(r for r in _list(data, "missingRanks")
                                       if isinstance(r, int)),
                   missing_files=_strings(data, "missingFiles"),
                   failed_evidence=_strings(data, "failedEvidence"),
                   sequence_gaps=_strings(data, "sequenceGaps"),
                   conflicts=_strings(data, "conflicts"), events=_int(data, "events"),
                   outputs_recorded=(data["outputsRecorded"]
                                     if isinstance(data.get("outputsRecorded"), bool) else None),
                   attempts=tuple(_maps(data, "attempts")),
                   departed_nodes=_strings(data, "departedNodes"),
                   capture_gaps=_strings(data, "captureGaps"),
                   allowed_capture_gaps=_strings(data, "allowedCaptureGaps"),
                   failed_ranks=_strings(data, "failedRanks"))
