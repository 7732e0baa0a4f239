"""Zero-code capture's cost, side by side in one run (#15 targets).

1. **Step time.** The same training loop (DataLoader over a DistributedSampler,
   an MLP of ~1.1 M parameters on one thread, a torch.load'ed data file, a
   torch.save at the end; a step measured from one batch to the next, data
   loading included) runs in
   fresh processes, alternately plain and with zero-code capture installed
   (audit hook, sampler wrapper, save patches, a live rank agent reporting
   to a real coordinator over gRPC). Each process times its steps; the figure
   is the median of per-pair ratios of median step time. Target <= 1.01.
2. **Start-up.** Wall time of ``slsa-torchrun --slsa-out DIR`` (its own
   coordinator, key, bundle) against plain ``torchrun`` on the same 2-rank
   script, alternating. Target: <= 1.5 s added.

    PYTHONPATH=.:tests .venv/bin/python bench/bench_zero_code.py [--pairs 5] [--starts 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_TARGET = 1.01
START_TARGET_S = 1.5
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

LOOP = r'''
import json, os, sys, time
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
data = torch.load(sys.argv[1])
dataset = TensorDataset(data["x"], data["y"])
sampler = DistributedSampler(dataset, num_replicas=1, rank=0, seed=1)
loader = DataLoader(dataset, batch_size=64, sampler=sampler)
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                            torch.nn.ReLU(), torch.nn.Linear(1024, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
times = []
for epoch in range(int(sys.argv[2])):
    sampler.set_epoch(epoch)
    start = time.perf_counter()
    for x, y in loader:  # a step is from one batch to the next: loading included
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        now = time.perf_counter()
        times.append(now - start)
        start = now
torch.save(model.state_dict(), sys.argv[3])
print(json.dumps({"median_step": sorted(times)[len(times) // 2], "steps": len(times)}))
'''

CAPTURED = r'''
import os, runpy, sys
from slsa_dist.capture.auto import install
from slsa_dist.capture.runtime import init
runtime = init(coordinator=os.environ["SLSA_COORDINATOR"], job_id="bench", rank=0, world_size=1,
               spool_dir=os.environ["SLSA_SPOOL_DIR"], finish_at_exit=False)
install(runtime, script=sys.argv[1])
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
runtime.finish()
'''

DDP = r'''
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
dist.destroy_process_group()
'''


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def step_time(pairs: int, work: Path) -> list[float]:
    import torch

    torch.manual_seed(0)
    data = work / "data.pt"
    torch.save({"x": torch.randn(8192, 64), "y": torch.randint(0, 10, (8192,))}, data)
    (work / "loop.py").write_text(LOOP)
    (work / "captured.py").write_text(CAPTURED)
    key = work / "keys" / "signing.key"
    subprocess.run([str(BIN / "slsa-dist"), "keygen", "--out", str(work / "keys")], check=True,
                   capture_output=True, timeout=60)
    port_file = work / "port"
    coordinator = subprocess.Popen(
        [str(BIN / "slsa-dist"), "coordinator", "--job-id", "bench", "--listen", "127.0.0.1:0",
         "--port-file", str(port_file), "--key", str(key), "--out", str(work / "out"),
         "--world-size", str(10_000), "--plaintext", "--idle-timeout", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise SystemExit("coordinator did not start")
            time.sleep(0.05)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SLSA_COORDINATOR":
               port_file.read_text().strip(), "SLSA_SPOOL_DIR": str(work / "spool")}
        ratios = []
        for pair in range(pairs):
            args = [str(data), "3", str(work / f"model-{pair}.pt")]
            order = ("plain", "captured") if pair % 2 == 0 else ("captured", "plain")
            result = {}
            for kind in order:
                env_kind = {**env, "RANK": str(pair)} if kind == "captured" else env
                script = [str(work / "loop.py")] if kind == "plain" else \
                    [str(work / "captured.py"), str(work / "loop.py")]
                result[kind] = _run([sys.executable, *script, *args], env_kind)["median_step"]
            ratios.append(result["captured"] / result["plain"])
            print(f"  pair {pair}: plain {result['plain'] * 1e3:.3f} ms, captured "
                  f"{result['captured'] * 1e3:.3f} ms per step, ratio {ratios[-1]:.3f}")
        return ratios
    finally:
        coordinator.kill()
        coordinator.wait(10)


def start_up(starts: int, work: Path) -> tuple[list[float], list[float]]:
    script = work / "ddp.py"
    script.write_text(DDP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain, own = [], []
    for index in range(starts):
        for kind in (("plain", "own") if index % 2 == 0 else ("own", "plain")):
            cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", str(script)] if kind == "plain" \
                else [str(BIN / "slsa-torchrun"), "--slsa-out", str(work / f"prov-{index}"),
                      "--nproc-per-node", "2", str(script)]
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, timeout=300, check=True, env=env, cwd=work)
            (plain if kind == "plain" else own).append(time.perf_counter() - start)
        print(f"  start {index}: torchrun {plain[-1]:.2f} s, slsa-torchrun --slsa-out "
              f"{own[-1]:.2f} s")
    return plain, own


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    (ROOT / "bench-out").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "bench-out") as tmp:
        print("step time, zero-code capture vs plain (fresh processes, alternating):")
        ratios = step_time(args.pairs, Path(tmp))
        ratio = statistics.median(ratios)
        print(f"median of paired ratios: {ratio:.4f} (target <= {STEP_TARGET}) "
              f"{'MET' if ratio <= STEP_TARGET else 'NOT MET'}")
        print("start-up, slsa-torchrun --slsa-out vs torchrun (2 ranks, alternating):")
        plain, own = start_up(args.starts, Path(tmp))
        added = statistics.median(own) - statistics.median(plain)
        print(f"median added: {added:.2f} s (target <= {START_TARGET_S} s) "
              f"{'MET' if added <= START_TARGET_S else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
