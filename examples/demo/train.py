"""The demo's training script: DDP over gloo on data shards, DCP checkpoints.

Unchanged training code would work too (``-m slsa_dist.exec`` records code,
parameters, inventory and exit state); this script also uses the sampler
wrapper and the digesting DCP writer so the provenance says which rank read
which shard and names every checkpoint file by digest.

    slsa-torchrun --nproc-per-node 2 -m slsa_dist.exec examples/demo/train.py \\
        --data DIR --out DIR [--epochs N] [--init-from CHECKPOINT] [--lr LR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import slsa_dist
from slsa_dist.torch import DigestingFileSystemWriter, RecordingSampler, shards_from_files


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", default="0.5")
    parser.add_argument("--init-from", type=Path)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo",
                        help="nccl trains on this rank's GPU (LOCAL_RANK)")
    args = parser.parse_args()

    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(args.backend)
    rank = dist.get_rank()
    torch.manual_seed(args.seed)
    slsa_dist.record_hyperparameters({"lr": args.lr, "epochs": args.epochs, "seed": args.seed,
                                      "batch_size": 64})

    files = sorted(args.data.glob("*.npz"))
    arrays = [np.load(f) for f in files]
    features = torch.from_numpy(np.concatenate([a["x"] for a in arrays]))
    labels = torch.from_numpy(np.concatenate([a["y"] for a in arrays]))
    shards = shards_from_files(files, [len(a["y"]) for a in arrays], root=args.data.parent)
    sampler: DistributedSampler[int] = DistributedSampler(TensorDataset(features, labels),
                                                          seed=args.seed)
    recording: RecordingSampler[int] = RecordingSampler(sampler, shards=shards)
    loader = DataLoader(TensorDataset(features, labels), batch_size=64, sampler=recording)

    model = torch.nn.Linear(64, 10).to(device)
    if args.init_from is not None:
        state = {"model": model.state_dict()}
        dcp_load(state, checkpoint_id=str(args.init_from))
        model.load_state_dict(state["model"])
        slsa_dist.record_input(args.init_from, kind="model", name="base-model")
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                  else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=float(args.lr))
    loss = torch.tensor(0.0)
    for epoch in range(args.epochs):
        recording.set_epoch(epoch)
        for batch_x, batch_y in loader:
            x, y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        final = epoch == args.epochs - 1
        target = args.out / ("final" if final else f"epoch-{epoch}")
        dcp_save({"model": {k: v.cpu() for k, v in model.state_dict().items()}},
                 storage_writer=DigestingFileSystemWriter(target,
                                                          role="final" if final else "checkpoint"))
    if rank == 0:
        print(f"trained {args.epochs} epochs, final loss {loss.item():.3f}", flush=True)
    # Teardown order matters with gloo: free DDP's reducer while its process group is
    # alive and every rank has arrived, then destroy the group (the other order can
    # hang in ~ProcessGroupGloo joining its worker threads).
    dist.barrier()
    del ddp, optimizer
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
