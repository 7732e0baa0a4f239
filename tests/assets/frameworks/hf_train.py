"""A Hugging Face Trainer script as users write it: data read from a file, a tiny
model made in-process, ``save_model`` at the end.

``--callback`` adds ``SlsaTrainerCallback`` (made first, so the recorder is on
before the data is read); without it the script knows nothing of slsa-dist and
runs under ``-m slsa_dist.exec``.
"""

import argparse
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--callback", action="store_true")
parser.add_argument("--max-steps", type=int, default=2)
args = parser.parse_args()

callbacks = []
if args.callback:
    from slsa_dist.hf import SlsaTrainerCallback

    callbacks.append(SlsaTrainerCallback())


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


data = torch.load(args.data)
dataset = [{"x": data["x"][i], "labels": data["y"][i]} for i in range(len(data["x"]))]
training = TrainingArguments(output_dir=str(args.out), max_steps=args.max_steps,
                             per_device_train_batch_size=4, learning_rate=0.05, seed=3,
                             save_strategy="no", report_to=[], use_cpu=True,
                             logging_strategy="no", dataloader_num_workers=0,
                             ddp_backend="gloo")
trainer = Trainer(model=Tiny(), args=training, train_dataset=dataset, callbacks=callbacks)
trainer.train()
trainer.save_model(str(args.out / "final"))
