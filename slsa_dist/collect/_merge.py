"""The merge: a pure state machine from accepted messages to ONE Statement.

Three layers, split along who may say what (python-tuf's TrustedMetadataSet is the
model), behind one facade, :class:`JobState`, which the coordinator, the simulator
and the tests drive:

- ``collect._ingest``: protobuf in, typed and authorized events out. Every check
  (rules 1-7, 9 and 10 below) against the state and ``collect._authority``, before
  anything changes.
- ``collect._state``: the pure application of those events (no protobuf), and the
  queries the coordinator asks (who completed, which attempt is final).
- ``collect._assemble``: the finalized state judged again with everything in hand
  (rule 10's conflicts), built into typed records and ONE Statement or its ledger.

No I/O happens here: no sockets, no files, no clocks (times are passed in),
no randomness (nonces are passed in). The gRPC servicer is a thin shell that
journals what this machine accepts and replays the journal into it after a
restart, so replay rebuilds exactly the state that was acknowledged.

Messages are the wire types of ``slsa_dist._pb.v1``, converted once, by the ingest
(these modules are private; nothing here leaks into the public API). Every refusal raises
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
   identity it is refused (``ALREADY_EXISTS``) and kept: two processes claiming one
   rank is a conflict of the job, named in its completeness record with both
   claimants (a restart is a new attempt, numbered by its launcher, never this).
   Nodes likewise, by node id (refused only).
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

import datetime as dt
from collections.abc import Mapping
from typing import Any

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.attest._verdict import EvidenceVerdict, EvidenceVerifier
from slsa_dist.collect import _assemble as assemble
from slsa_dist.collect._assemble import LedgerWriter
from slsa_dist.collect._authority import OPERATOR, Principal
from slsa_dist.collect._ingest import Ingest, no_verifier, reject
from slsa_dist.collect._state import (
    DuplicateClaim,
    Limits,
    MemoryRecords,
    RecordStore,
    Registered,
    State,
)
from slsa_dist.errors import SenderError
from slsa_dist.model._statement import DEFAULT_BUILDER_ID, Statement

__all__ = ["DuplicateClaimError", "EvidenceVerdict", "JobState", "LedgerWriter", "Limits",
           "MemoryRecords", "RecordStore", "Registered"]


class DuplicateClaimError(SenderError):
    """``ALREADY_EXISTS``: a second process claimed a (rank, attempt, worker). Refused,
    and kept by the state as a conflict of the job; ``new`` when this claimant was not
    kept before (the coordinator journals its registration, and a replay keeps it
    again)."""

    def __init__(self, claim: DuplicateClaim, *, new: bool) -> None:
        super().__init__(f"rank {claim.rank} attempt {claim.attempt} worker {claim.worker}: "
                         f"registered as (node, run id, pid) {claim.first}, found "
                         f"{claim.second}; recorded as a conflict of the job",
                         code="ALREADY_EXISTS")
        self.claim = claim
        self.new = new


class JobState:
    """Everything accepted for one job, and the merge into one Statement: each message
    checked by the ingest, then applied to the state; the statement assembled from it."""

    def __init__(
        self,
        *,
        job_id: str,
        world_size: int,
        run_id: str,
        limits: Limits | None = None,
        evidence_verifier: EvidenceVerifier = no_verifier,
        min_world_size: int | None = None,
        records: RecordStore | None = None,
    ) -> None:
        limits = limits or Limits()
        if not 0 < world_size <= limits.max_world_size:
            raise reject("INVALID_ARGUMENT", "world size: expected 1.."
                         f"{limits.max_world_size}, found {world_size}")
        minimum = world_size if min_world_size is None else min_world_size
        if not 0 < minimum <= world_size:
            raise reject("INVALID_ARGUMENT", f"elastic world size: expected 1..{world_size} "
                         f"as its minimum, found {minimum}")
        self._state = State(job_id=job_id, world_size=world_size, min_world_size=minimum,
                            run_id=run_id, limits=limits, records=records or MemoryRecords())
        self._ingest = Ingest(self._state, evidence_verifier=evidence_verifier)
        self.job_id, self.run_id, self.limits = job_id, run_id, limits
        self.world_size = world_size  # the operator's, never a rank's (contract rule 2)
        self.min_world_size = minimum

    # -- queries ------------------------------------------------------------------------

    @property
    def finalized(self) -> bool:
        return self._state.finalized is not None

    @property
    def events(self) -> int:
        """Events accepted, across every sender."""
        return self._state.events

    @property
    def rank_count(self) -> int:
        """Ranks with a record (registered at least once)."""
        return len(self._state.ranks)

    @property
    def launchers(self) -> bool:
        """Whether any node launcher reported an attempt: then only launchers open
        attempts and bind ranks to nodes (collect._authority). A job without one (ranks
        only: a local demo, a plain process) has nothing but its ranks' word."""
        return bool(self._state.opened)

    def completed_ranks(self) -> set[int]:
        """Ranks whose latest attempt's main process completed successfully; with
        launchers, only in the final attempt and listed there by the node it ran on."""
        return self._state.completed_ranks()

    def missing_ranks(self) -> list[int]:
        return self._state.missing_ranks()

    @property
    def final_world_size(self) -> int:
        """The world size of the final attempt (the operator's until a rank registers)."""
        return self._state.final_world_size

    @property
    def elastic(self) -> bool:
        return self._state.elastic

    def all_ranks_complete(self) -> bool:
        return self._state.succeeded_below == self._state.final_world_size

    def all_ranks_ended(self) -> bool:
        """Every rank of the final attempt reported how it ended, successfully or not."""
        return self._state.ended_below == self._state.final_world_size

    def nodes_finished(self) -> bool:
        """Every node still in the job reported a terminal state for its latest attempt;
        a node that left before the final attempt is not waited for."""
        return self._state.nodes_finished()

    def sender_node(self, sender: str) -> str | None:
        """The node a registered sender registered under (None for an unknown sender)."""
        state = self._state.senders.get(sender)
        return None if state is None else state.node

    def acked_through(self, sender: str) -> int:
        state = self._state.senders.get(sender)
        return 0 if state is None else state.next_sequence - 1

    # -- messages: checked (collect._ingest), then applied (collect._state) ---------------

    def challenge(self, job_id: str, node_id: str, nonce: bytes, now: dt.datetime, *,
                  principal: Principal = OPERATOR, tpm_challenge: bytes = b"") -> None:
        """Record a nonce issued to ``node_id`` (the caller made it), with the TPM
        credential challenge issued with it (its record, opening included), if any."""
        self._ingest.challenge(job_id, node_id, principal)
        self._state.add_challenge(node_id, nonce, now, tpm_challenge=tpm_challenge)

    def register_node(self, req: pb.RegisterNodeRequest, now: dt.datetime, *,
                      peer: str = "", principal: Principal = OPERATOR) -> Registered:
        joined = self._ingest.register_node(req, now, peer=peer, principal=principal)
        return joined if isinstance(joined, Registered) else self._state.add_node(joined)

    def register_rank(self, req: pb.RegisterRankRequest, now: dt.datetime, *,
                      relayed_by: str = "", principal: Principal = OPERATOR) -> Registered:
        """Register a rank; ``relayed_by`` names the node agent that relayed it (which
        must be the node the rank names); ``principal`` is who the coordinator saw."""
        joined = self._ingest.register_rank(req, now, relayed_by=relayed_by,
                                            principal=principal)
        if isinstance(joined, DuplicateClaim):
            raise DuplicateClaimError(joined, new=self._state.add_duplicate_claim(joined, now))
        return joined if isinstance(joined, Registered) else self._state.add_rank(joined)

    def accept(self, req: pb.ReportRequest, now: dt.datetime, *,
               principal: Principal = OPERATOR) -> tuple[int, int]:
        """Apply a batch. Returns (index of the first new event, duplicates).

        The caller journals ``req.events[index:]``; the acknowledgement is
        :meth:`acked_through` once that is durable.
        """
        batch = self._ingest.batch(req, now, principal=principal)
        if batch.count:
            self._state.apply(batch)
        return batch.start, batch.start

    def finalize(self, job_id: str, reason: str, now: dt.datetime) -> None:
        """Close the job; idempotent. ``reason`` says what triggered it."""
        if job_id != self.job_id:
            raise reject("NOT_FOUND", f"job id: expected {self.job_id!r}, found {job_id!r}")
        self._state.finalize(reason, now)

    # -- the statement (collect._assemble) ------------------------------------------------

    def statement(self, *, builder_id: str = DEFAULT_BUILDER_ID,
                  builder_version: Mapping[str, str] | None = None,
                  internal: Mapping[str, Any] | None = None,
                  ledger: LedgerWriter | None = None) -> Statement:
        """Merge everything into ONE Statement. Requires :meth:`finalize` first.

        With ``ledger`` the records go to it, one at a time, and the statement carries
        the ledger's descriptor instead (``collect._assemble.statement``).
        """
        return assemble.statement(self._state, builder_id=builder_id,
                                  builder_version=builder_version, internal=internal,
                                  ledger=ledger)
