"""Training-step overhead of slsa-dist capture against none, in one run.

Same model, same data, same process; epochs alternate (ABBA) between a plain
``DistributedSampler`` and the ``RecordingSampler`` wrapper with a live rank
agent reporting to a real coordinator process over gRPC. Each epoch reports
its shards, so the agent's sender thread works during the measured epochs.

    .venv/bin/python bench/bench_agent_overhead.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from slsa_dist.capture._samplers import RecordingSampler, Shard
from slsa_dist.integrations import _contract

TARGET = 1.01
HERE = Path(__file__).parent


def epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
          sampler: object, number: int) -> tuple[float, int]:
    sampler.set_epoch(number)  # type: ignore[attr-defined]
    steps = 0
    start = time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        steps += 1
    return time.perf_counter() - start, steps


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--no-agent", action="store_true",
                        help="wrapper only, no live agent (to separate the two costs)")
    parser.add_argument("--hidden", type=int, default=1024,
                        help="MLP width; 1024 gives ~8 ms steps here, lighter than real training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    features, labels = torch.randn(args.samples, 64), torch.randint(0, 10, (args.samples,))
    dataset = TensorDataset(features, labels)
    per = args.samples // 16
    shards = [Shard(name=f"train-{i:05d}.tar", digest={"sha256": hashlib.sha256(
        str(i).encode()).hexdigest()}, start=i * per, stop=(i + 1) * per) for i in range(16)]
    width = args.hidden
    model = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, str(HERE / "_coordinator_server.py"),
                                   tmp, "overhead", "1"], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        rt = None if args.no_agent else _contract.init(
            coordinator=f"127.0.0.1:{port}", job_id="overhead", rank=0, world_size=1,
            node_id="bench", spool_dir=Path(tmp) / "spool", finish_at_exit=False,
            argv=["bench_agent_overhead.py"])
        plain_sampler = DistributedSampler(dataset, num_replicas=1, rank=0, seed=1)
        recorded_sampler = RecordingSampler(DistributedSampler(dataset, num_replicas=1, rank=0,
                                                               seed=1), shards=shards)
        variants = {
            "plain": (plain_sampler, DataLoader(dataset, batch_size=64, sampler=plain_sampler)),
            "recorded": (recorded_sampler, DataLoader(dataset, batch_size=64,
                                                      sampler=recorded_sampler)),
        }
        epoch(model, optimizer, variants["plain"][1], plain_sampler, 0)  # warm up
        times: dict[str, list[float]] = {"plain": [], "recorded": []}
        steps = 0
        for number in range(args.epochs):
            order = ["plain", "recorded"] if number % 2 == 0 else ["recorded", "plain"]
            for name in order:
                sampler, loader = variants[name]
                seconds, steps = epoch(model, optimizer, loader, sampler, number)
                times[name].append(seconds / steps)
        if rt is not None:
            rt.finish(timeout=30)
            server.wait(60)
        else:
            server.kill()
    plain, recorded = statistics.median(times["plain"]), statistics.median(times["recorded"])
    ratio = statistics.median(r / p for p, r in zip(times["plain"], times["recorded"],
                                                    strict=True))
    print(f"training step (MLP width {args.hidden}, batch 64), {steps} steps per epoch, "
          f"{args.epochs} interleaved epochs per variant")
    print(f"  no capture                 {plain * 1e3:.3f} ms/step")
    print(f"  sampler + live agent       {recorded * 1e3:.3f} ms/step")
    print(f"  difference of medians      {(recorded - plain) * 1e6:+.1f} us/step")
    print(f"  median of paired ratios    {ratio:.4f}x   target <= {TARGET}x   "
          f"{'PASS' if ratio <= TARGET else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
