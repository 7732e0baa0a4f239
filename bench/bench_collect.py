"""Ingest and finalize through real gRPC on loopback: 64, 256 and 1,024 ranks x 1,000 events.

One run prints, per size: events/s (ingest), finalize seconds, coordinator
peak RSS, provenance size, and the cost per event relative to 64 ranks (a
linear cost stays near 1.0x). The coordinator runs in its own process; the
simulated ranks' requests are built before timing starts and sent over one
asyncio gRPC channel with 64 requests in flight.

    .venv/bin/python bench/bench_collect.py [--sizes 64,256,1024] [--events 1000]
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

from grpc import aio

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc

HERE = Path(__file__).parent
TARGETS = {"events_per_s": 100_000, "finalize_s": 2.0, "rss_mib": 512}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rank_events(rank: int, count: int) -> list[pb.Event]:
    """What one rank reports: shard reads over 10 shards it shares with its neighbours,
    a few checkpoint files, parameters, and its completion."""
    shards = [(f"train-{(rank + i) % 4096:05d}.tar", _sha(f"shard{(rank + i) % 4096}"))
              for i in range(10)]
    events = [pb.Event(parameters=pb.Parameters(external_json=json.dumps(
        {"entryPoint": "train.py", "seed": 1234})))]
    for step in range(4):
        events.append(pb.Event(file=pb.FileWritten(
            artifact=f"ckpt/step-{step}", path=f"__{rank}_0.distcp",
            digest={"sha256": _sha(f"{rank}-{step}")}, size=1 << 20,
            role=pb.FINAL if step == 3 else pb.CHECKPOINT)))
    while len(events) < count - 1:
        i = len(events)
        name, digest = shards[i % 10]
        events.append(pb.Event(shard=pb.ShardConsumed(
            name=name, digest={"sha256": digest}, samples=256, epoch=i // 10,
            index_digest=_sha(f"{rank}:{i}")[:32])))
    events.append(pb.Event(completed=pb.RankCompleted(exit_code=0, state="SUCCEEDED")))
    return events


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def drive(port: int, job: str, world: int, events: int, pid: int
                ) -> tuple[float, float, float]:
    registrations = [pb.RegisterRankRequest(job_id=job, rank=r, world_size=world,
                                            node_id=f"node-{r // 8}", pid=r)
                     for r in range(world)]
    batches = [rank_events(r, events) for r in range(world)]
    async with aio.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_send_message_length", 8 << 20)]) as channel:
        stub = pb_grpc.CollectorStub(channel)
        senders = await asyncio.gather(*(stub.RegisterRank(r) for r in registrations))
        requests = [pb.ReportRequest(job_id=job, sender=s.sender, first_sequence=1, events=b)
                    for s, b in zip(senders, batches, strict=True)]
        semaphore = asyncio.Semaphore(64)

        async def send(request: pb.ReportRequest) -> None:
            async with semaphore:
                reply = await stub.Report(request)
                assert reply.acked_through == len(request.events)

        start = time.perf_counter()
        await asyncio.gather(*(send(r) for r in requests))
        ingest = time.perf_counter() - start
        after_ingest = peak_rss_mib(pid)
        start = time.perf_counter()
        final = await stub.Finalize(pb.FinalizeRequest(job_id=job, reason="request"))
        finalize = time.perf_counter() - start
        assert final.complete, final
    return ingest, finalize, after_ingest


def run_size(world: int, events: int, workdir: Path) -> dict[str, float]:
    job = f"bench-{world}"
    server = subprocess.Popen([sys.executable, str(HERE / "_coordinator_server.py"),
                               str(workdir / job), job, str(world)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:  # any failure stops the coordinator (it has no idle timeout here) and its pipe
        port = json.loads(server.stdout.readline())["port"]
        ingest, finalize, after_ingest = asyncio.run(drive(port, job, world, events,
                                                           server.pid))
        stats = json.loads(server.stdout.readline())
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        server.stdout.close()
    total = world * events
    assert stats["events"] == total, stats
    return {"ranks": world, "events": total, "events_per_s": total / ingest,
            "ingest_s": ingest, "finalize_s": finalize, "rss_mib": stats["peak_rss_mib"],
            "bundle_mib": stats["bundle_bytes"] / 2**20, "commits": stats["commits"],
            "rss_after_ingest_mib": after_ingest}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="64,256,1024")
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_size(world, args.events, Path(tmp)) for world in sizes]
    base = rows[0]["ingest_s"] / rows[0]["events"]
    print(f"{'ranks':>6} {'events':>10} {'events/s':>10} {'finalize s':>11} {'peak RSS MiB':>13} "
          f"{'peak after ingest':>17} {'bundle MiB':>11} {'cost/event vs first':>20}")
    for row in rows:
        growth = (row["ingest_s"] / row["events"]) / base
        print(f"{row['ranks']:>6} {row['events']:>10,} {row['events_per_s']:>10,.0f} "
              f"{row['finalize_s']:>11.2f} {row['rss_mib']:>13.0f} "
              f"{row['rss_after_ingest_mib']:>17.0f} {row['bundle_mib']:>11.2f} "
              f"{growth:>19.2f}x")
    largest = rows[-1]
    checks = [
        ("events/s (min over sizes)", min(r["events_per_s"] for r in rows),
         f">= {TARGETS['events_per_s']:,}", min(r["events_per_s"] for r in rows)
         >= TARGETS["events_per_s"]),
        (f"finalize s at {largest['ranks']} ranks", largest["finalize_s"],
         f"<= {TARGETS['finalize_s']}", largest["finalize_s"] <= TARGETS["finalize_s"]),
        ("peak RSS MiB (max)", max(r["rss_mib"] for r in rows), f"<= {TARGETS['rss_mib']}",
         max(r["rss_mib"] for r in rows) <= TARGETS["rss_mib"]),
    ]
    print()
    for name, value, target, ok in checks:
        print(f"{name:<32} {value:>12,.2f}   target {target:<12} {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
