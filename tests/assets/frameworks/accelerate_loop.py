"""A plain Accelerate loop as users write it: ``Accelerator().prepare(model, opt,
loader)``, then ``save_model``. It knows nothing of slsa-dist."""

import argparse
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
data = torch.load(args.data)
loader = DataLoader(TensorDataset(data["x"], data["y"]), batch_size=8, shuffle=True)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for _epoch in range(2):
    for x, y in loader:
        optimizer.zero_grad()
        accelerator.backward(torch.nn.functional.mse_loss(model(x), y))
        optimizer.step()
accelerator.wait_for_everyone()
accelerator.save_model(model, args.out / "final")
