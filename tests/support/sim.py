"""An in-memory cluster that drives the merge state machine without gRPC.

Scenarios read like sentences: ``Cluster(world_size=8).rank(5).report(...)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.collect._merge import JobState
from slsa_dist.model._ledger import LedgerRecords, write_ledger
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def shard(name: str, samples: int = 10, epoch: int = 0) -> pb.Event:
    return pb.Event(shard=pb.ShardConsumed(name=name, digest={"sha256": sha(name)},
                                           samples=samples, epoch=epoch))


def written(artifact: str, path: str, role: int = pb.CHECKPOINT) -> pb.Event:
    return pb.Event(file=pb.FileWritten(artifact=artifact, path=path,
                                        digest={"sha256": sha(artifact + path)}, size=1,
                                        role=role))


def done(exit_code: int = 0) -> pb.Event:
    return pb.Event(completed=pb.RankCompleted(
        exit_code=exit_code, state="SUCCEEDED" if exit_code == 0 else "FAILED"))


class Sender:
    def __init__(self, cluster: Cluster, key: str) -> None:
        self.cluster = cluster
        self.key = key
        self.sequence = 1

    def report(self, *events: pb.Event, first: int | None = None) -> tuple[int, int]:
        start = self.sequence if first is None else first
        result = self.cluster.state.accept(pb.ReportRequest(
            job_id=self.cluster.job_id, sender=self.key, first_sequence=start,
            events=list(events)), self.cluster.tick())
        self.sequence = max(self.sequence, start + len(events))
        return result


class Cluster:
    def __init__(self, *, world_size: int = 1, job_id: str = "job-1", run_id: str = "",
                 **kwargs: Any) -> None:
        self.job_id = job_id
        self.world_size = world_size
        self.state = JobState(job_id=job_id, world_size=world_size,
                              run_id=run_id or str(uuid.uuid4()), **kwargs)
        self.clock = 0
        self.nonces: dict[str, bytes] = {}

    def tick(self) -> dt.datetime:
        self.clock += 1
        return T0 + dt.timedelta(seconds=self.clock)

    def rank(self, rank: int, *, attempt: int = 0, node: str = "node-0", world_size: int = 0,
             run_id: str = "run", pid: int = 100, worker: int = 0) -> Sender:
        registered = self.state.register_rank(pb.RegisterRankRequest(
            job_id=self.job_id, rank=rank, attempt=attempt,
            world_size=world_size or self.world_size or 1, node_id=node, run_id=run_id,
            pid=pid, worker=worker), self.tick())
        return Sender(self, registered.sender)

    def node(self, node: str, hostname: str = "host") -> Sender:
        registered = self.state.register_node(pb.RegisterNodeRequest(
            job_id=self.job_id, node_id=node, hostname=hostname), self.tick())
        return Sender(self, registered.sender)

    def challenge(self, node: str) -> bytes:
        nonce = sha(f"nonce-{node}-{self.clock}").encode()[:32]
        self.state.challenge(self.job_id, node, nonce, self.tick())
        return nonce

    def finalize(self, reason: str = "request") -> Provenance:
        self.state.finalize(self.job_id, reason, self.tick())
        return Provenance.from_statement(self.statement())

    def statement(self) -> Statement:
        return self.state.statement()

    def finalize_to_ledger(self, path: Path, reason: str = "request") -> Provenance:
        """Finalize with the records in a ledger at ``path``, attached to what it returns."""
        self.state.finalize(self.job_id, reason, self.tick())
        statement = self.state.statement(ledger=partial(write_ledger, path))
        provenance = Provenance.from_statement(statement)
        ledger = provenance.ledger()
        assert ledger is not None
        return provenance.with_records(LedgerRecords(path, ledger))

    def run_all(self, shards_per_rank: int = 2) -> None:
        assert self.world_size is not None
        for r in range(self.world_size):
            sender = self.rank(r)
            sender.report(*[shard(f"shard-{(r * shards_per_rank + i) % 4}")
                            for i in range(shards_per_rank)],
                          written("ckpt", f"__{r}_0.distcp"), done())


def signed_ledger_job(folder: Path, signer: Signer) -> Path:
    """A 2-rank job ``big`` whose records went to a ledger, signed into ``folder``: the
    bundle's path (the ledger and its index beside it)."""
    cluster = Cluster(world_size=2, job_id="big")
    for rank in range(2):
        cluster.rank(rank).report(shard("data-0"), written("ckpt", f"__{rank}_0.distcp"),
                                  done())
    cluster.state.finalize("big", "request", cluster.tick())
    folder.mkdir(parents=True)
    statement = cluster.state.statement(
        ledger=partial(write_ledger, folder / "big.ledger.jsonl"))
    return write_bundle(folder / "big.intoto.jsonl", [sign_statement(statement, [signer])])


def launched(number: int, ranks: list[int], state: str, **exit_codes: int) -> pb.Event:
    """A node launcher's record of attempt ``number``: the ranks it started, and how the
    attempt ended for it (``STARTED`` while it runs)."""
    return pb.Event(attempt=pb.AttemptRecord(
        attempt=number, run_id="run", ranks=ranks, state=state,
        exit_codes={int(k.lstrip("r")): v for k, v in exit_codes.items()}))


def signed(cluster: Cluster, folder: Path, signer: Signer, reason: str = "request") -> Path:
    """Finalize ``cluster`` and sign its statement into ``folder``: the bundle's path."""
    cluster.state.finalize(cluster.job_id, reason, cluster.tick())
    folder.mkdir(parents=True, exist_ok=True)
    return write_bundle(folder / f"{cluster.job_id}.intoto.jsonl",
                        [sign_statement(cluster.statement(), [signer])])
