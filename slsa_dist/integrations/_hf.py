"""Hugging Face ``Trainer`` (and Accelerate) under one slsa-dist provenance.

    from slsa_dist.hf import SlsaTrainerCallback
    trainer = Trainer(..., callbacks=[SlsaTrainerCallback()])

Under ``slsa-torchrun`` (or with ``SLSA_COORDINATOR`` set) the callback starts
the rank's recorder if the launcher did not, turns zero-code capture on (the
files the run reads, the samplers, the saves), and adds what only the
Trainer knows: its arguments as hyperparameters and each checkpoint it
saves (``checkpoint-<step>``) as an artifact with every file by digest. The
model saved by ``trainer.save_model`` is captured as the last save, so it is
the subject.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from transformers import TrainerCallback

from slsa_dist.capture import _runtime
from slsa_dist.capture._auto import install, wrap_loader
from slsa_dist.integrations import _contract

__all__ = ["SlsaTrainerCallback"]

log = logging.getLogger(__name__)

# Training arguments that decide the result; the rest (logging, paths) are left out.
_ARGUMENTS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
              "gradient_accumulation_steps", "weight_decay", "warmup_steps", "warmup_ratio",
              "lr_scheduler_type", "optim", "seed", "data_seed", "max_grad_norm", "bf16", "fp16")


def _start() -> _runtime.Runtime | None:
    """The rank's runtime, started (with zero-code capture) if the launcher did not.
    Never raises: a recorder that cannot start is logged, and training goes on."""
    try:
        runtime = _runtime.current()
        if runtime is None and os.environ.get("SLSA_COORDINATOR"):
            runtime = _contract.init()
        if runtime is not None:
            install(runtime)
    except Exception:  # no runtime, so no provenance to hold the gap
        log.warning("slsa-dist: could not start recording this Trainer run", exc_info=True)
        return None
    return runtime


class SlsaTrainerCallback(TrainerCallback):
    """Records a Trainer run's arguments and checkpoints; see the module docstring.

    Every hook returns as if it were not there when recording fails: the failure is a
    capture gap in the provenance, never an exception in the Trainer."""

    def __init__(self) -> None:
        _start()  # before the Trainer builds its data loaders, so capture sees them

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        runtime = _start()
        if runtime is None:
            return
        try:
            if kwargs.get("train_dataloader") is not None:  # made before capture was on
                wrap_loader(kwargs["train_dataloader"])
            chosen = {}
            for name in _ARGUMENTS:
                try:
                    chosen[name] = getattr(args, name)
                except AttributeError:
                    continue
            runtime.agent.set_parameters(external={"hyperparameters": {
                k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
                for k, v in chosen.items()}}, internal={"framework": "transformers.Trainer"})
        except Exception as exc:  # train on; the provenance says what is missing
            _runtime.capture_gap("Trainer arguments (SlsaTrainerCallback.on_train_begin)", exc)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = "a Trainer checkpoint"
        try:
            runtime = _runtime.current()
            if runtime is None or not state.is_world_process_zero:
                return
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                _runtime.record_artifact(folder, role="checkpoint")
        except Exception as exc:  # the checkpoint is saved; only its record is not
            _runtime.capture_gap(f"checkpoint {folder}", exc)
