"""An unchanged DDP training script, paced for fault tests: nothing in it knows slsa-dist.

Reads the digits shards with ``np.load``, trains with a ``DistributedSampler``,
saves a DCP checkpoint per epoch (default writer) and resumes from the newest one
when restarted (torchrun elastic), and ends with ``torch.save`` of the model on
rank 0. ``--step-seconds`` paces each step, so a job lasts long enough for a
node to die or be cut off mid-training.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def latest(out: Path) -> tuple[int, Path | None]:
    done = sorted((int(p.name.split("-")[1]), p) for p in out.glob("epoch-*")
                  if (p / ".metadata").exists())
    return (done[-1][0] + 1, done[-1][1]) if done else (0, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--step-seconds", type=float, default=0.0)
    args = parser.parse_args()
    # A collective that waits on a dead peer gives up after this, so torchrun elastic can
    # restart the survivors (a node that dies without closing its connections is silent).
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    rank = dist.get_rank()
    shards = [np.load(p) for p in sorted(args.data.glob("*.npz"))]
    x = torch.tensor(np.concatenate([s["x"] for s in shards]), dtype=torch.float32)
    y = torch.tensor(np.concatenate([s["y"] for s in shards]), dtype=torch.long)
    dataset = TensorDataset(x, y)
    sampler = DistributedSampler(dataset, seed=7)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    start, checkpoint = latest(args.out)
    if checkpoint is not None:  # an elastic restart: resume where the last save left off
        state = {"model": model.state_dict()}
        dcp.load(state, checkpoint_id=str(checkpoint))
        model.load_state_dict(state["model"])
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for epoch in range(start, args.epochs):
        sampler.set_epoch(epoch)
        for inputs, labels in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(ddp(inputs), labels).backward()
            optimizer.step()
            time.sleep(args.step_seconds)
        dcp.save({"model": model.state_dict()}, checkpoint_id=str(args.out / f"epoch-{epoch}"))
    if rank == 0:
        torch.save(model.state_dict(), args.out / "model.pt")
        print(f"trained epochs {start}..{args.epochs - 1} on {dist.get_world_size()} ranks "
              f"(restart {os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')})", flush=True)
    dist.barrier()
    del ddp, optimizer
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
