"""An unchanged DDP training script, as users write them: it knows nothing of slsa-dist.

It torch.load()s its data, trains with a DistributedSampler, and rank 0
torch.save()s the model. Helper code comes from a module beside it.
"""

import argparse
from pathlib import Path

import torch
import torch.distributed as dist
from helpers import make_model  # imported from the script's own directory
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

dist.init_process_group("gloo")
torch.manual_seed(0)
data = torch.load(args.data)
dataset = TensorDataset(data["x"], data["y"])
sampler = DistributedSampler(dataset, shuffle=True, seed=7)
loader = DataLoader(dataset, batch_size=16, sampler=sampler)
model = DistributedDataParallel(make_model(data["x"].shape[1]))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x).squeeze(-1), y).backward()
        optimizer.step()
if dist.get_rank() == 0:
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.module.state_dict(), args.out / "model.pt")
dist.barrier()
dist.destroy_process_group()
