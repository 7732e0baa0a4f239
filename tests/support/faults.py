"""Fault scenarios with real processes, shared by the tests and ``bench/reliability.py``.

Each returns an :class:`Outcome`: how many events the agents recorded, how
many the coordinator acknowledged, how many are in the signed provenance,
and how many were lost (must be 0).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slsa_dist.collect._agent import Agent, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_COMPLETENESS, MEDIA_RANK
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle

from support.background import (
    coordinator_process,
    free_port,
    signing_key,
)

__all__ = ["Outcome", "journal_full", "outage", "sigkill_restart"]

RANK_AGENT = """
import hashlib, json, sys, time
from slsa_dist.collect._agent import Agent, RankIdentity
address, job, rank, world, events, spool, delay = sys.argv[1:8]
agent = Agent(coordinator=address, job_id=job, spool_dir=spool, flush_interval=0.02,
              batch_max=50, rpc_timeout=2.0,
              identity=RankIdentity(rank=int(rank), world_size=int(world), node_id="node-0"))
for i in range(int(events)):
    name = f"shard-{int(rank)}-{i % 7}"
    agent.record_shard(name, {"sha256": hashlib.sha256(name.encode()).hexdigest()}, samples=1,
                       epoch=i // 7)
    if float(delay) and i % 50 == 0:
        time.sleep(float(delay))
agent.record_file("ckpt", f"__{rank}_0.distcp",
                  {"sha256": hashlib.sha256(rank.encode()).hexdigest()}, role="final")
agent.complete()
flushed = agent.close(timeout=90)
stats = agent.stats()
print(json.dumps({"rank": int(rank), "recorded": int(events) + 2, "flushed": flushed,
                  "acked_through": stats.acked_through, "dropped": stats.dropped}))
"""


@dataclass
class Outcome:
    name: str
    recorded: int = 0
    acknowledged: int = 0
    in_provenance: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Acknowledged events missing from the provenance."""
        return max(0, self.acknowledged - self.in_provenance)


def _provenance(bundle: Path) -> Provenance:
    (envelope,) = read_bundle(bundle)
    return Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


def _comparable(provenance: Provenance) -> dict[str, Any]:
    """What must not depend on faults: subjects, dependencies, ranks and attempts."""
    ranks = []
    for original in sorted(provenance.records(MEDIA_RANK), key=lambda r: int(r["rank"])):
        record = dict(original)
        record["attempts"] = [{k: v for k, v in a.items() if k not in ("registered",)}
                              for a in record["attempts"]]
        ranks.append(record)
    return {"subjects": [s.to_dict() for s in provenance.statement.subjects],
            "dependencies": sorted(json.dumps(d.to_dict(), sort_keys=True)
                                   for d in provenance.dependencies),
            "ranks": ranks}


def _run_job(workdir: Path, job: str, *, kill_after_bytes: int | None, world: int,
             events: int) -> tuple[Provenance, list[dict[str, Any]]]:
    workdir.mkdir(parents=True, exist_ok=True)
    key, public = signing_key(workdir)
    port = free_port()
    address = f"127.0.0.1:{port}"
    script = workdir / "rank_agent.py"
    script.write_text(RANK_AGENT)
    procs: list[subprocess.Popen[str]] = []
    with coordinator_process(workdir, job_id=job, port=port, key=key, world_size=world,
                             log_name=f"{job}.log") as first:
        procs = [subprocess.Popen(
            [sys.executable, str(script), address, job, str(r), str(world), str(events),
             str(workdir / "spool"), "0.1" if kill_after_bytes else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]
        if kill_after_bytes is None:
            outputs = [p.communicate(timeout=120) for p in procs]
            first.wait(60)
        else:
            wal = workdir / "out" / f"{job}.journal.sqlite-wal"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                    not wal.exists() or wal.stat().st_size < kill_after_bytes):
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)  # mid-stream
            first.wait(10)
    if kill_after_bytes is not None:
        if not all(p.poll() is None for p in procs):
            raise AssertionError("agents finished before the coordinator was killed")
        time.sleep(1.0)  # agents keep recording and spooling while nothing listens
        with coordinator_process(workdir, job_id=job, port=port, key=key, world_size=world,
                                 log_name=f"{job}-restarted.log") as second:
            outputs = [p.communicate(timeout=120) for p in procs]
            second.wait(60)
    reports = [json.loads(out) for out, _ in outputs]
    provenance = verify_bundle(workdir / "out" / f"{job}.intoto.jsonl",
                               keys=[load_verifier(public)]).provenance
    return provenance, reports


def sigkill_restart(workdir: Path, *, world: int = 6, events: int = 1500) -> Outcome:
    """The coordinator is SIGKILLed mid-stream and restarted from its journal; the
    provenance equals a fault-free run's (timestamps aside)."""
    clean, _ = _run_job(workdir / "clean", "job-clean", kill_after_bytes=None, world=world,
                        events=events)
    faulted, reports = _run_job(workdir / "faulted", "job-clean", kill_after_bytes=50_000,
                                world=world, events=events)
    ranks = {r["rank"]: r for r in faulted.records(MEDIA_RANK)}
    outcome = Outcome("coordinator SIGKILL and restart",
                      recorded=sum(r["recorded"] for r in reports),
                      acknowledged=sum(r["acked_through"] for r in reports),
                      in_provenance=sum(int(ranks[r["rank"]]["events"]) for r in reports))
    outcome.details["equal_to_fault_free"] = _comparable(clean) == _comparable(faulted)
    outcome.details["all_flushed"] = all(r["flushed"] for r in reports)
    return outcome


def outage(workdir: Path, *, seconds: float = 30.0, events: int = 3000) -> Outcome:
    """The coordinator is gone for ``seconds``: recording never blocks, and every
    event arrives once it is back."""
    signer = Signer.generate()
    port = free_port()
    kwargs: dict[str, Any] = {"job_id": "outage", "signer": signer, "out_dir": workdir / "out",
                              "world_size": 1, "settle": 0.2, "listen": f"127.0.0.1:{port}"}
    latencies: list[float] = []
    agent: Agent | None = None
    down = threading.Event()
    with CoordinatorThread(**kwargs) as server:
        agent = Agent(coordinator=server.address, job_id="outage", spool_dir=workdir / "spool",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n"), rpc_timeout=1.0)
        for i in range(events // 3):
            agent.record_shard("s", {"sha256": hashlib.sha256(b"s").hexdigest()}, samples=1,
                               epoch=i)
        assert agent.flush(30)
    down.set()  # the coordinator is stopped: keep "training" through the outage
    deadline = time.monotonic() + seconds
    recorded = events // 3
    while time.monotonic() < deadline:
        start = time.perf_counter()
        agent.record_shard("s", {"sha256": hashlib.sha256(b"s").hexdigest()}, samples=1,
                           epoch=recorded)
        latencies.append(time.perf_counter() - start)
        recorded += 1
        time.sleep(seconds / events * 1.5)
    with CoordinatorThread(**kwargs) as server:  # same port, same journal
        agent.complete()
        recorded += 1
        flushed = agent.close(60)
        result = server.wait_finalized(60)
    (rank,) = _provenance(result.bundle).records(MEDIA_RANK)
    outcome = Outcome(f"coordinator unreachable for {seconds:g} s", recorded=recorded,
                      acknowledged=agent.stats().acked_through, in_provenance=int(rank["events"]))
    outcome.details.update(flushed=flushed, max_record_ms=max(latencies) * 1e3,
                           records_during_outage=len(latencies))
    return outcome


def journal_full(workdir: Path, *, events: int = 2000) -> Outcome:
    """The journal's storage fills: the coordinator stops acknowledging, the agent
    keeps its spool, and after a restart with room nothing acknowledged is lost."""
    signer = Signer.generate()
    port = free_port()
    base: dict[str, Any] = {"job_id": "full", "signer": signer, "out_dir": workdir / "out",
                            "world_size": 1, "settle": 0.2, "listen": f"127.0.0.1:{port}"}
    identity = RankIdentity(rank=0, world_size=1, node_id="n")
    with CoordinatorThread(**base, journal_max_bytes=64 * 1024) as server:
        agent = Agent(coordinator=server.address, job_id="full", spool_dir=workdir / "spool",
                      identity=identity, rpc_timeout=1.0, batch_max=100)
        for i in range(events):
            agent.record_shard(f"shard-{i % 50}", {"sha256": hashlib.sha256(
                f"{i % 50}".encode()).hexdigest()}, samples=1, epoch=i)
        agent.flush(timeout=5)  # it cannot finish: the journal is full
        assert server.coordinator is not None
        degraded = server.coordinator.journal_failure is not None
        acknowledged_while_full = agent.stats().acked_through
        pending = agent.stats().unacked + agent.stats().queued
        agent.close(timeout=1)
    with CoordinatorThread(**base) as server:  # restarted with room, from the same journal
        again = Agent(coordinator=server.address, job_id="full", spool_dir=workdir / "spool",
                      identity=identity)
        again.complete()
        flushed = again.close(60)
        result = server.wait_finalized(60)
    provenance = _provenance(result.bundle)
    (rank,) = provenance.records(MEDIA_RANK)
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    outcome = Outcome("journal storage full", recorded=events + 1,
                      acknowledged=again.stats().acked_through, in_provenance=int(rank["events"]))
    outcome.details.update(degraded=degraded, acknowledged_while_full=acknowledged_while_full,
                           pending_while_full=pending, flushed=flushed,
                           complete=completeness["complete"])
    return outcome
