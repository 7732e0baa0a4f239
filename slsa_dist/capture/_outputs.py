"""What a saved file is, by meaning: the model, a checkpoint, or a file beside them.

Zero-code capture sees ``torch.save`` and ``save_file`` calls, not what the framework
meant by them. The subject of a provenance is the model (docs/buildtype.md, "Which
output is the subject"), so each saved path is read by the conventions the frameworks
write by:

* **auxiliary**: training arguments, optimizer, scheduler, gradient-scaler and RNG
  state, trainer state (``training_args.bin``, ``optimizer.pt``, ``optim_state_dict.pt``,
  ``scheduler.pt``, ``scaler.pt``, ``rng_state_1.pth``, ``trainer_state.json``):
  recorded as byproducts, never the subject;
* **model folder**: a weights file by the Hugging Face / safetensors names
  (``model.safetensors``, ``model-00001-of-00002.safetensors``, ``pytorch_model.bin``,
  ``adapter_model.safetensors``, ...) makes its folder the artifact, digested whole
  (weights, config, tokenizer) as ``save_pretrained`` wrote it; the final model unless
  the folder is an intermediate checkpoint (``checkpoint-500``, ``global_step500``,
  ``epoch=3-step=40``), then a checkpoint;
* anything else a script saves is a **checkpoint**: the last one written is the
  subject when no model folder was saved (the rule for plain ``torch.save`` scripts).

``SLSA_SUBJECT`` (``slsa-torchrun --slsa-subject PATH``; several joined with
``os.pathsep``) names the subject outright: those paths are the final model and every
other save is a checkpoint or auxiliary.
"""

from __future__ import annotations

import os
import re
from typing import Literal

__all__ = ["Kind", "classify", "named_subjects"]

Kind = Literal["auxiliary", "model", "checkpoint-folder", "checkpoint"]

_AUXILIARY = re.compile(
    r"(^|[_.-])(training_args|trainer_state|optim(izer)?(_state(_dict)?)?|"
    r"(lr_)?scheduler|scaler|rng_state(_\d+)?)([_.-]|$)", re.IGNORECASE)
_WEIGHTS = re.compile(
    r"^(model|pytorch_model|adapter_model|diffusion_pytorch_model)"
    r"(-\d{5}-of-\d{5})?\.(safetensors|bin)$")
_CHECKPOINT_FOLDER = re.compile(r"^(checkpoint-\d+|global_step\d+|epoch=\d+.*|step[_-]?\d+)$")


def classify(path: str) -> Kind:
    """What the file at ``path`` is by the conventions above (its name and folder)."""
    name = os.path.basename(path)
    stem = name.split(".", 1)[0]
    if _AUXILIARY.search(stem):
        return "auxiliary"
    if _WEIGHTS.match(name):
        folder = os.path.basename(os.path.dirname(path))
        return "checkpoint-folder" if _CHECKPOINT_FOLDER.match(folder) else "model"
    return "checkpoint"


def named_subjects() -> tuple[str, ...]:
    """The paths ``SLSA_SUBJECT`` names as the subject, absolute; none when unset."""
    value = os.environ.get("SLSA_SUBJECT", "")
    return tuple(os.path.abspath(p) for p in value.split(os.pathsep) if p.strip())
