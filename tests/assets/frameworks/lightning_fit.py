"""A Lightning fit as users write it, for either package name.

``--package lightning`` imports ``lightning as L`` (Lightning as published),
``--package pytorch_lightning`` the older name. The data is read in the
DataModule's ``setup`` (after Lightning started its processes), the callback
is the only line of slsa-dist. Run it under ``slsa-torchrun -m slsa_dist.exec``
(torchrun starts the 2 processes) or as ``python lightning_fit.py`` with
``Trainer(devices=2, strategy="ddp")`` starting the second process itself.
"""

import argparse
import importlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from slsa_dist.lightning import SlsaCallback

parser = argparse.ArgumentParser()
parser.add_argument("--package", choices=("lightning", "pytorch_lightning"), required=True)
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--labels", type=Path, help="a file read at the top level, before fit")
args = parser.parse_args()
# read by every process as it runs the script's top level: under Lightning's own
# launcher before the Trainer (and so the rank) exists
LABELS = args.labels.read_text().split() if args.labels else []

L = importlib.import_module("lightning" if args.package == "lightning" else "pytorch_lightning")


class Data(L.LightningDataModule):
    def setup(self, stage: str) -> None:
        data = torch.load(args.data)
        self.dataset = TensorDataset(data["x"], data["y"])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=8, shuffle=True)


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.linear = torch.nn.Linear(4, 1)

    def training_step(self, batch, index):
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp",
                    logger=False, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=str(args.out), callbacks=[SlsaCallback()])
trainer.fit(Tiny(), datamodule=Data())
