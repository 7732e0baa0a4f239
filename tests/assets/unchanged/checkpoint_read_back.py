"""An unchanged DDP script in which one rank loads the checkpoint another saved.

Rank 0 saves ``--ckpt`` (after loading it first with ``--resume``, as a resumed run
does: the previous run's checkpoint, overwritten here); after a barrier, rank 1
loads what rank 0 saved. It knows nothing of slsa-dist.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--ckpt", type=Path, required=True)
parser.add_argument("--resume", action="store_true")
args = parser.parse_args()

dist.init_process_group("gloo")
rank = dist.get_rank()
model = torch.nn.Linear(4, 1)
if args.resume:  # every rank starts from the previous run's checkpoint
    model.load_state_dict(torch.load(args.ckpt))
    dist.barrier()  # all have read it before it is overwritten
    time.sleep(1.0)  # and a reader's own tools (a backup, a hash) are done with it too
with torch.no_grad():
    model.weight.add_(1.0)
if rank == 0:
    args.ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.ckpt)
dist.barrier()
if rank == 1 and not args.resume:
    model.load_state_dict(torch.load(args.ckpt))  # the checkpoint rank 0 just wrote
dist.barrier()
dist.destroy_process_group()
