"""FSDP2 with Distributed Checkpoint, as users write it; it knows nothing of slsa-dist.

``fully_shard`` over a tiny model, a ``DistributedSampler`` over data read from
a file, then ``get_state_dict`` and ``dcp.save`` of model and optimizer into a
checkpoint folder every rank writes its own files into. ``--resume DIR`` loads
a previous run's checkpoint first (``dcp.load``, ``set_state_dict``).
``--dcp-api`` saves the model alone through ``get_model_state_dict`` and the
optimizer, gathered, with ``torch.save`` beside it.
"""

import argparse
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--resume", type=Path)
parser.add_argument("--dcp-api", action="store_true")
args = parser.parse_args()

dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (dist.get_world_size(),))
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
for layer in model:
    if isinstance(layer, torch.nn.Linear):
        fully_shard(layer, mesh=mesh)
fully_shard(model, mesh=mesh)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
if args.resume:
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(args.resume))
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optim"])

data = torch.load(args.data)
dataset = TensorDataset(data["x"], data["y"])
sampler = DistributedSampler(dataset, shuffle=True, seed=7)
loader = DataLoader(dataset, batch_size=8, sampler=sampler)
for epoch in range(2):
    sampler.set_epoch(epoch)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

if args.dcp_api:
    dcp.save(get_model_state_dict(model), checkpoint_id=str(args.out / "checkpoint"))
    optim = get_optimizer_state_dict(model, optimizer,
                                     options=StateDictOptions(full_state_dict=True))
    if dist.get_rank() == 0:
        torch.save(optim, args.out / "optim_state_dict.pt")
else:
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state},
             checkpoint_id=str(args.out / "checkpoint"))
dist.barrier()
dist.destroy_process_group()
