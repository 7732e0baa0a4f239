"""Collect, finalize and verify at job scale: 1,024 to 65,536 ranks through node relays.

Shaped like production (issue 17): 8 ranks per node; each node's relay sends
its ranks' registrations in one ``Relay`` call, then their reports as the agent
batches them (~100 events per rank: parameters, four checkpoint files, shard
reads over ten shards shared with neighbours, completion; two batches per
rank), each node over its own channel up to ``--channels``. The coordinator is
the real one, in its own process, with its journal, ledger and signature.
Requests are serialized before timing starts (the relays' own CPU is the
nodes', not the coordinator's).

One run prints, per size: events/s, registration time, finalize time,
coordinator peak RSS, statement and ledger size, Relay calls and retries, and
``slsa-dist verify`` (whole bundle with ledger; ``--rank N``) time and peak
RSS, with the per-event cost relative to the smallest size.

    PYTHONPATH=. .venv/bin/python bench/bench_collect.py [--sizes 1024,4096,16384,65536]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc import aio

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._agent import retry_delay
from slsa_dist.collect._relay import RESERVE_ABOVE
from slsa_dist.collect._wire import varint, wire_field

HERE = Path(__file__).parent
RANKS_PER_NODE = 8
# Measures a child's own peak (VmHWM): ru_maxrss would carry the parent's across fork+exec.
_PEAK = ("import atexit, sys; from slsa_dist.cli import main; atexit.register(lambda: print("
         "[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr));"
         " sys.exit(main(sys.argv[1:]))")
EVENTS_PER_RANK = 100
TARGETS = {"events_per_s": 100_000, "growth": 1.3, "finalize_s": 5.0, "rss_mib": 1024,
           "statement_mib": 1.0, "verify_s": 5.0, "verify_mib": 512, "rank_s": 0.5}
RELAY = "/slsa_dist.v1.Collector/Relay"
RESERVE = "/slsa_dist.v1.Collector/Reserve"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Events:
    """Serialized events, shared where ranks send the same bytes (a shard's read in one
    epoch): building 6.5M messages in Python would take the benchmark longer than the
    coordinator takes to ingest them."""

    def __init__(self) -> None:
        self._shards: dict[tuple[int, int], bytes] = {}
        self.parameters = pb.Event(parameters=pb.Parameters(external_json=json.dumps(
            {"entryPoint": "train.py", "seed": 1234}))).SerializeToString()
        self.completed = pb.Event(completed=pb.RankCompleted(
            exit_code=0, state="SUCCEEDED")).SerializeToString()

    def shard(self, shard: int, epoch: int) -> bytes:
        key = (shard, epoch)
        if key not in self._shards:
            self._shards[key] = pb.Event(shard=pb.ShardConsumed(
                name=f"train-{shard:05d}.tar", digest={"sha256": _sha(f"shard{shard}")},
                samples=256, epoch=epoch, index_digest=_sha(f"{shard}:{epoch}")[:32],
                sampler_json='{"num_replicas":8,"seed":1234}')).SerializeToString()
        return self._shards[key]

    def rank(self, rank: int) -> list[bytes]:
        """One rank's ~100 events, in the order an agent sends them."""
        events = [self.parameters]
        for step in range(4):
            events.append(pb.Event(file=pb.FileWritten(
                artifact=f"ckpt/step-{step}", path=f"__{rank}_0.distcp",
                digest={"sha256": _sha(f"{rank}-{step}")}, size=1 << 20,
                role=pb.FINAL if step == 3 else pb.CHECKPOINT)).SerializeToString())
        i = 0
        while len(events) < EVENTS_PER_RANK - 1:
            events.append(self.shard((rank + i % 10) % 4096, i // 10))
            i += 1
        events.append(self.completed)
        return events


def build_requests(job: str, world: int) -> tuple[list[bytes], list[list[bytes]], int]:
    """Per node: its registrations' Relay request, and its reports' Relay requests."""
    events = Events()
    job_field = wire_field(1, job.encode())
    registrations, reports, total = [], [], 0
    for first in range(0, world, RANKS_PER_NODE):
        node = f"node-{first // RANKS_PER_NODE}"
        head = job_field + wire_field(2, node.encode())
        items = b"".join(wire_field(3, wire_field(1, pb.RegisterRankRequest(
            job_id=job, rank=r, world_size=world, node_id=node, pid=r).SerializeToString()))
            for r in range(first, min(first + RANKS_PER_NODE, world)))
        registrations.append(head + items)
        halves: list[bytes] = [b"", b""]
        for r in range(first, min(first + RANKS_PER_NODE, world)):
            rank_events = events.rank(r)
            total += len(rank_events)
            cut = len(rank_events) // 2
            for half, (start, chunk) in enumerate(((1, rank_events[:cut]),
                                                   (cut + 1, rank_events[cut:]))):
                report = (job_field + wire_field(2, f"rank/{r}/0/0".encode())
                          + varint(3 << 3) + varint(start)
                          + b"".join(wire_field(4, e) for e in chunk))
                halves[half] += wire_field(3, wire_field(2, report))
        reports.append([head + halves[0], head + halves[1]])
    return registrations, reports, total


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Client:
    """Simulated node relays: one channel per node (up to a cap), one call in flight per
    node (up to ``in_flight`` at once), retries as the agent does on RESOURCE_EXHAUSTED /
    UNAVAILABLE, every attempt counted."""

    def __init__(self, port: int, job: str, nodes: int, channels: int, in_flight: int) -> None:
        self.job = job
        self.limit = asyncio.Semaphore(in_flight)
        options = [("grpc.max_send_message_length", 64 << 20),
                   ("grpc.max_receive_message_length", 64 << 20)]
        self.channels = [aio.insecure_channel(f"127.0.0.1:{port}", options=[
            *options, ("grpc.channel_id", i)]) for i in range(min(nodes, channels))]
        self.calls = [c.unary_unary(RELAY, request_serializer=None,
                                    response_deserializer=pb.RelayResponse.FromString)
                      for c in self.channels]
        self.reserves = [c.unary_unary(RESERVE,
                                       request_serializer=pb.ReserveRequest.SerializeToString,
                                       response_deserializer=pb.ReserveResponse.FromString)
                         for c in self.channels]
        self.attempts = 0
        self.rpcs = 0
        self.reserved = 0

    async def relay(self, node: int, request: bytes) -> pb.RelayResponse:
        delay = 0.05
        for _ in range(100):
            self.attempts += 1
            try:
                async with self.limit:
                    if len(request) >= RESERVE_ABOVE:  # as NodeRelay: room first
                        await self.reserves[node % len(self.calls)](pb.ReserveRequest(
                            job_id=self.job, node_id=f"node-{node}", bytes=len(request)),
                            timeout=120)
                        self.reserved += 1
                    reply: pb.RelayResponse = await self.calls[node % len(self.calls)](
                        request, timeout=120)
                self.rpcs += 1
                for result in reply.results:
                    assert result.code == 0, result.detail
                return reply
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      grpc.StatusCode.UNAVAILABLE):
                    raise
                # As the agent does: the refusal's retry-after, or the backoff, with jitter.
                await asyncio.sleep(retry_delay(max(delay, wire.retry_after(exc) or 0.0)))
                delay = min(delay * 2, 2.0)
        raise RuntimeError("relay: 100 attempts refused")

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


async def drive(port: int, job: str, registrations: list[bytes], reports: list[list[bytes]],
                channels: int, in_flight: int) -> dict[str, float]:
    client = Client(port, job, len(registrations), channels, in_flight)
    try:
        start = time.perf_counter()
        await asyncio.gather(*(client.relay(n, r) for n, r in enumerate(registrations)))
        registered = time.perf_counter() - start

        async def node(index: int) -> None:
            for request in reports[index]:
                await client.relay(index, request)

        start = time.perf_counter()
        await asyncio.gather(*(node(n) for n in range(len(reports))))
        ingest = time.perf_counter() - start
        stub_channel = client.channels[0]
        finalize_call = stub_channel.unary_unary(
            "/slsa_dist.v1.Collector/Finalize",
            request_serializer=pb.FinalizeRequest.SerializeToString,
            response_deserializer=pb.FinalizeResponse.FromString)
        start = time.perf_counter()
        final = await finalize_call(pb.FinalizeRequest(job_id=job, reason="request"),
                                    timeout=600)
        finalize = time.perf_counter() - start
        assert final.complete, final
    finally:
        await client.close()
    return {"register_s": registered, "ingest_s": ingest, "finalize_s": finalize,
            "attempts": client.attempts, "rpcs": client.rpcs, "reserved": client.reserved}


def measured(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of a ``slsa-dist`` command, and its output."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True,
                          text=True, check=False, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("VmHWM"))
    return wall, int(peak.split()[1]) / 1024, done.stdout


def run_size(world: int, workdir: Path, channels: int, in_flight: int) -> dict[str, float]:
    job = f"bench-{world}"
    out = workdir / job
    registrations, reports, total = build_requests(job, world)
    server = subprocess.Popen([sys.executable, str(HERE / "_coordinator_server.py"),
                               str(out), job, str(world)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:  # any failure stops the coordinator (it has no idle timeout here) and its pipe
        port = json.loads(server.stdout.readline())["port"]
        timing = asyncio.run(drive(port, job, registrations, reports, channels, in_flight))
        stats = json.loads(server.stdout.readline())
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        server.stdout.close()
    assert stats["events"] == total, (stats, total)
    del registrations, reports
    cli = ["verify", stats["bundle"], "--key", str(out / "signing.pub")]
    verify_s, verify_mib, said = measured(cli)
    assert "NOT verified" not in said, said
    assert "verified" in said, said
    rank_s, rank_mib, said = measured([*cli, "--rank", str(world // 2)])
    assert f"PASS  rank {world // 2}" in said, said
    return {"ranks": world, "events": total, "events_per_s": total / timing["ingest_s"],
            **timing, "rss_mib": stats["peak_rss_mib"],
            "statement_mib": stats["statement_bytes"] / 2**20,
            "ledger_mib": stats["ledger_bytes"] / 2**20,
            "retries": timing["attempts"] - timing["rpcs"],
            "calls": stats["calls"], "refused": stats["refused"],
            "verify_s": verify_s, "verify_mib": verify_mib, "rank_s": rank_s,
            "rank_mib": rank_mib}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1024,4096,16384,65536")
    parser.add_argument("--channels", type=int, default=1024,
                        help="at most this many client connections (one per node below it)")
    parser.add_argument("--in-flight", type=int, default=512,
                        help="node relays with a call in flight at once (the others have "
                             "nothing to send at that moment)")
    parser.add_argument("--keep", type=Path, help="write bundles and ledgers here, and keep "
                        "them (default: a temporary folder)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        rows = []
        for world in sizes:
            rows.append(run_size(world, Path(tmp), args.channels, args.in_flight))
            print(f"  {world} ranks done: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    base = rows[0]["ingest_s"] / rows[0]["events"]
    header = (f"{'ranks':>6} {'events/s':>9} {'cost/ev':>8} {'register s':>10} "
              f"{'finalize s':>10} {'coord RSS':>9} {'statement':>9} {'ledger':>8} "
              f"{'calls':>7} {'retries':>7} {'reserved':>8} {'verify s':>8} {'verify RSS':>10} "
              f"{'--rank s':>8}")
    print(header)
    for row in rows:
        row["growth"] = (row["ingest_s"] / row["events"]) / base
        print(f"{row['ranks']:>6} {row['events_per_s']:>9,.0f} {row['growth']:>7.2f}x "
              f"{row['register_s']:>10.2f} {row['finalize_s']:>10.2f} "
              f"{row['rss_mib']:>6.0f}MiB {row['statement_mib'] * 1024:>6.0f}KiB "
              f"{row['ledger_mib']:>5.0f}MiB {row['rpcs']:>7,.0f} {row['retries']:>7,.0f} "
              f"{row['reserved']:>8,.0f} "
              f"{row['verify_s']:>8.2f} {row['verify_mib']:>7.0f}MiB {row['rank_s']:>8.2f}")
    largest = rows[-1]
    checks = [
        ("events/s (min over sizes)", min(r["events_per_s"] for r in rows),
         f">= {TARGETS['events_per_s']:,}", min(r["events_per_s"] for r in rows)
         >= TARGETS["events_per_s"]),
        (f"cost/event at {largest['ranks']} vs {rows[0]['ranks']}", largest["growth"],
         f"<= {TARGETS['growth']}x", largest["growth"] <= TARGETS["growth"]),
        ("Relay attempts / RPCs (max)", max(1 + r["retries"] / r["rpcs"] for r in rows),
         "<= 1.05", all(r["retries"] <= 0.05 * r["rpcs"] for r in rows)),
        (f"finalize s at {largest['ranks']}", largest["finalize_s"],
         f"<= {TARGETS['finalize_s']}", largest["finalize_s"] <= TARGETS["finalize_s"]),
        (f"coordinator RSS MiB at {largest['ranks']}", largest["rss_mib"],
         f"<= {TARGETS['rss_mib']}", largest["rss_mib"] <= TARGETS["rss_mib"]),
        (f"statement MiB at {largest['ranks']}", largest["statement_mib"],
         f"<= {TARGETS['statement_mib']}", largest["statement_mib"] <= TARGETS["statement_mib"]),
        (f"verify s at {largest['ranks']}", largest["verify_s"], f"<= {TARGETS['verify_s']}",
         largest["verify_s"] <= TARGETS["verify_s"]),
        (f"verify RSS MiB at {largest['ranks']}", largest["verify_mib"],
         f"<= {TARGETS['verify_mib']}", largest["verify_mib"] <= TARGETS["verify_mib"]),
        (f"verify --rank s at {largest['ranks']}", largest["rank_s"],
         f"<= {TARGETS['rank_s']}", largest["rank_s"] <= TARGETS["rank_s"]),
    ]
    print()
    for name, value, target, ok in checks:
        print(f"{name:<36} {value:>12,.2f}   target {target:<10} {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
