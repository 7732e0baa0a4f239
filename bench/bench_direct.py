"""The direct path against the node-relay path, side by side (issue 27 item 6).

Direct: ranks report without a node relay, as Ray workers do when none runs on their
node. One client process simulates every rank: each registers, then sends its ~100
events in two reports (as bench_collect.py's ranks do), one call at a time, over one
channel per 8 ranks, with a 10 s deadline, paced and retrying as the agent does: its
first call waits for its slot (``start_delay``: rank * 4 / SLSA_COORDINATOR_RATE s after
the start, the agent's default rate when unset), an answer's pace-ms delays the next
call (with jitter, at most the agent's MAX_PACE), a refusal's retry-after with jitter
(the backoff does not grow), otherwise a doubling backoff. Every
attempt is counted, and how it ended: accepted, turned away (RESOURCE_EXHAUSTED with a
retry-after from admission control, before any work; or UNAVAILABLE, CANCELLED, ...
from gRPC itself), or timed out (DEADLINE_EXCEEDED: resent, and possibly handled
twice). Attempts per call count every one of them.

Relay: the same events through simulated node relays (bench_collect.py's client: one
Relay call per node at a time, room reserved first for large ones).

Both against the real coordinator in its own process, with its journal; the table
gives events/s, attempts per call, timeouts, refusals and the coordinator's peak RSS,
with the targets (attempts per call <= 1.1, peak <= 1 GiB).

    PYTHONPATH=. .venv/bin/python bench/bench_direct.py [--sizes 16384,65536]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from bench_collect import HERE, RANKS_PER_NODE, Events, build_requests, drive
from grpc import aio

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._agent import MAX_PACE, coordinator_rate, retry_delay, start_delay
from slsa_dist.collect._wire import varint, wire_field

DEADLINE = 10.0
TARGETS = {"attempts_per_call": 1.1, "rss_mib": 1024.0}
REGISTER = "/slsa_dist.v1.Collector/RegisterRank"
REPORT = "/slsa_dist.v1.Collector/Report"
FINALIZE = "/slsa_dist.v1.Collector/Finalize"


_TURNED_AWAY = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED, grpc.StatusCode.UNKNOWN)


def _sender(rank: int) -> str:
    """The sender name the coordinator gives a rank's first attempt."""
    return f"rank/{rank}/0/0"


class Ranks:
    """Every rank of the job in this one process, as agents without a relay."""

    def __init__(self, port: int, job: str, world: int) -> None:
        self.job, self.world = job, world
        self.events = Events()
        self.channels = [aio.insecure_channel(f"127.0.0.1:{port}", options=[
            *wire.CHANNEL_OPTIONS, ("grpc.channel_id", i)])
            for i in range((world + RANKS_PER_NODE - 1) // RANKS_PER_NODE)]
        self.register = [c.unary_unary(REGISTER, request_serializer=None,
                                       response_deserializer=pb.RegisterResponse.FromString)
                         for c in self.channels]
        self.report = [c.unary_unary(REPORT, request_serializer=None,
                                     response_deserializer=pb.ReportResponse.FromString)
                       for c in self.channels]
        self.rate = coordinator_rate()  # calls/s, as the agent reads it
        self.counts = {"calls": 0, "attempts": 0, "refused": 0, "timeouts": 0, "events": 0,
                       "paced": 0}
        self.why: Counter[str] = Counter()  # how attempts failed: status, hint, detail

    async def _send(self, method: Any, request: bytes) -> tuple[Any, float | None]:
        """One call as the agent makes it: resent until it is answered. The answer, and
        the pace (s) it asks before the next call, or None."""
        self.counts["calls"] += 1
        backoff = 0.05
        while True:
            self.counts["attempts"] += 1
            try:
                call = method(request, timeout=DEADLINE)
                reply = await call
                return reply, wire.pace(await call.trailing_metadata())
            except aio.AioRpcError as exc:
                code = exc.code()
                after = wire.retry_after(exc)
                self.why[f"{code.name} hint={after is not None} "
                         f"{(exc.details() or '').split(':')[0][:40]}"] += 1
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    self.counts["timeouts"] += 1
                elif code in _TURNED_AWAY:  # what the agent retries, but a timeout
                    self.counts["refused"] += 1
                else:
                    raise
                if after is not None:  # a refusal, not a failure: wait as told
                    await asyncio.sleep(retry_delay(max(after, 0.05)))
                    continue
                await asyncio.sleep(retry_delay(backoff))
                backoff = min(backoff * 2, 2.0)

    def requests(self, rank: int) -> tuple[bytes, list[tuple[int, bytes]]]:
        """A rank's registration and its two reports (events, request), made before the
        clock starts: the ranks' own CPU is theirs, not the coordinator's."""
        node = rank // RANKS_PER_NODE
        register = pb.RegisterRankRequest(job_id=self.job, rank=rank, world_size=self.world,
                                          node_id=f"node-{node}", pid=rank).SerializeToString()
        events = self.events.rank(rank)
        cut = len(events) // 2
        head = wire_field(1, self.job.encode()) + wire_field(2, _sender(rank).encode())
        return register, [(len(chunk), head + varint(3 << 3) + varint(start)
                           + b"".join(wire_field(4, e) for e in chunk))
                          for start, chunk in ((1, events[:cut]), (cut + 1, events[cut:]))]

    async def rank(self, rank: int, register: bytes, reports: list[tuple[int, bytes]]) -> None:
        node = rank // RANKS_PER_NODE
        await asyncio.sleep(start_delay(rank, self.rate))  # its slot, as the agent waits
        reply, pace = await self._send(self.register[node], register)
        assert reply.sender == _sender(rank), reply
        for count, report in reports:
            if pace is not None:  # a loaded coordinator asked for a wait: the agent's
                self.counts["paced"] += 1
                await asyncio.sleep(retry_delay(min(pace, MAX_PACE)))
            _, pace = await self._send(self.report[node], report)
            self.counts["events"] += count

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


def _server(out: Path, job: str, world: int) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen([sys.executable, str(HERE / "_coordinator_server.py"),
                               str(out), job, str(world)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, json.loads(server.stdout.readline())["port"]


def _finish(server: subprocess.Popen[str]) -> dict[str, Any]:
    assert server.stdout is not None
    stats: dict[str, Any] = json.loads(server.stdout.readline())
    server.wait(120)
    return stats


def _stop(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.kill()
        server.wait(10)
    if server.stdout is not None:
        server.stdout.close()


async def _direct(port: int, job: str, world: int) -> dict[str, float]:
    ranks = Ranks(port, job, world)
    try:
        requests = [ranks.requests(r) for r in range(world)]
        # Connected before the clock starts, as agents connect when their process starts.
        for first in range(0, len(ranks.channels), 256):
            await asyncio.gather(*(c.channel_ready() for c in ranks.channels[first:first + 256]))
        start = time.perf_counter()
        await asyncio.gather(*(ranks.rank(r, *requests[r]) for r in range(world)))
        del requests
        ingest = time.perf_counter() - start
        finalize = ranks.channels[0].unary_unary(
            FINALIZE, request_serializer=pb.FinalizeRequest.SerializeToString,
            response_deserializer=pb.FinalizeResponse.FromString)
        final = await finalize(pb.FinalizeRequest(job_id=job, reason="request"), timeout=600)
        assert final.complete, final
    finally:
        await ranks.close()
    print(f"  direct {world}: rate {ranks.rate:,.0f} calls/s; attempts that failed: "
          f"{dict(ranks.why)}", file=sys.stderr)
    return {"ingest_s": ingest, **ranks.counts}


def run_direct(world: int, workdir: Path) -> dict[str, float]:
    job = f"direct-{world}"
    server, port = _server(workdir / job, job, world)
    try:
        counts = asyncio.run(_direct(port, job, world))
        stats = _finish(server)
    finally:
        _stop(server)
    assert stats["events"] == counts["events"], (stats, counts)
    return {"path": "direct", "ranks": world, **counts,
            "events_per_s": counts["events"] / counts["ingest_s"],
            "rss_mib": stats["peak_rss_mib"], "coordinator_refused": stats["refused"]}


def run_relay(world: int, workdir: Path, channels: int, in_flight: int) -> dict[str, float]:
    job = f"relay-{world}"
    registrations, reports, total = build_requests(job, world)
    server, port = _server(workdir / job, job, world)
    try:
        timing = asyncio.run(drive(port, job, registrations, reports, channels, in_flight))
        stats = _finish(server)
    finally:
        _stop(server)
    assert stats["events"] == total, (stats, total)
    calls = len(registrations) + sum(len(r) for r in reports)
    return {"path": "relay", "ranks": world, "calls": calls, "attempts": timing["attempts"],
            # The relay client's calls have no 10 s deadline (the relay's is 20 s, and
            # large calls wait for room before they are sent): none timed out.
            "refused": timing["attempts"] - timing["rpcs"], "timeouts": 0, "events": total,
            "ingest_s": timing["register_s"] + timing["ingest_s"],
            "events_per_s": total / (timing["register_s"] + timing["ingest_s"]),
            "rss_mib": stats["peak_rss_mib"], "coordinator_refused": stats["refused"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="16384,65536")
    parser.add_argument("--paths", default="direct,relay")
    parser.add_argument("--channels", type=int, default=1024,
                        help="relay path: at most this many client connections")
    parser.add_argument("--in-flight", type=int, default=512,
                        help="relay path: node relays with a call in flight at once")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in (int(s) for s in args.sizes.split(",")):
            runs = {"direct": lambda w=world: run_direct(w, Path(tmp)),
                    "relay": lambda w=world: run_relay(w, Path(tmp), args.channels,
                                                       args.in_flight)}
            for path in args.paths.split(","):
                rows.append(runs[path]())
                print(f"  {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    print(f"{'ranks':>6} {'path':>6} {'events/s':>9} {'calls':>8} {'attempts/call':>13} "
          f"{'timeouts':>8} {'refusals':>8} {'paced':>6} {'coord peak':>10}  targets")
    ok = True
    for row in rows:
        per_call = row["attempts"] / row["calls"]
        good = per_call <= TARGETS["attempts_per_call"] and row["rss_mib"] <= TARGETS["rss_mib"]
        ok = ok and good
        print(f"{row['ranks']:>6} {row['path']:>6} {row['events_per_s']:>9,.0f} "
              f"{row['calls']:>8,} {per_call:>13.3f} {row['timeouts']:>8,} "
              f"{row['refused']:>8,} {row.get('paced', 0):>6,} {row['rss_mib']:>7,.0f}MiB  "
              f"{'PASS' if good else 'MISS'}")
    print(f"\ntargets: attempts/call <= {TARGETS['attempts_per_call']}, coordinator peak "
          f"<= {TARGETS['rss_mib']:,.0f} MiB; deadline {DEADLINE:.0f} s per direct call; "
          f"direct ranks paced at {coordinator_rate():,.0f} calls/s (SLSA_COORDINATOR_RATE)")
    print("all targets met" if ok else "targets missed: see MISS above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
