"""An unchanged Hugging Face Trainer script: a tiny model and data made in-process.

Under torchrun at 2 ranks the Trainer (through accelerate) shards batches with
``BatchSamplerShard``; nothing here knows of slsa-dist.
"""

import argparse
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--max-steps", type=int, default=3)
args = parser.parse_args()


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


generator = torch.Generator().manual_seed(0)
x = torch.randn(64, 4, generator=generator)
y = x.sum(dim=1, keepdim=True)
dataset = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
training = TrainingArguments(output_dir=str(args.out), max_steps=args.max_steps,
                             per_device_train_batch_size=4, learning_rate=0.05, seed=3,
                             save_strategy="no", report_to=[], use_cpu=True,
                             logging_strategy="no", dataloader_num_workers=0,
                             ddp_backend="gloo")
trainer = Trainer(model=Tiny(), args=training, train_dataset=dataset)
trainer.train()
trainer.save_model(str(args.out / "final"))
