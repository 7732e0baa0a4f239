"""PyTorch Lightning under one slsa-dist provenance.

    from slsa_dist.lightning import SlsaCallback
    trainer = pl.Trainer(..., callbacks=[SlsaCallback()])

Under ``slsa-torchrun`` (or with ``SLSA_COORDINATOR`` set) the callback starts
the rank's recorder if the launcher did not, turns zero-code capture on, and
adds what only Lightning knows: the module's ``hparams`` and the trainer's
own settings as parameters, and every checkpoint file its ``ModelCheckpoint``
callbacks kept (Lightning writes them through fsspec, which the save capture
does not see) as artifacts at the end of ``fit``; the last one written is
the subject.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pytorch_lightning import Callback
from pytorch_lightning.callbacks import ModelCheckpoint

from slsa_dist.capture import _runtime
from slsa_dist.capture._auto import install, wrap_loader
from slsa_dist.integrations import _contract

__all__ = ["SlsaCallback"]

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


class SlsaCallback(Callback):
    """Records a Lightning fit's parameters and checkpoints; see the module docstring."""

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        try:
            runtime = _runtime.current()
            if runtime is None and os.environ.get("SLSA_COORDINATOR"):
                runtime = _contract.init()
            if runtime is None:
                return
            install(runtime)
        except Exception:  # no runtime, so no provenance to hold the gap
            log.warning("slsa-dist: could not start recording this fit", exc_info=True)
            return
        try:
            hyperparameters = {str(k): _plain(v) for k, v in dict(pl_module.hparams).items()}
            hyperparameters.update(
                max_epochs=_plain(trainer.max_epochs),
                accumulate_grad_batches=_plain(trainer.accumulate_grad_batches),
                precision=_plain(trainer.precision))
            runtime.agent.set_parameters(external={"hyperparameters": hyperparameters},
                                         internal={"framework": "pytorch_lightning"})
        except Exception as exc:  # fit on; the provenance says what is missing
            _runtime.capture_gap("Lightning parameters (SlsaCallback.on_fit_start)", exc)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        try:
            loaders = trainer.train_dataloader  # made by the user, before capture was on
            for loader in (loaders.values() if isinstance(loaders, dict)
                           else loaders if isinstance(loaders, (list, tuple)) else [loaders]):
                wrap_loader(loader)  # never raises
        except Exception as exc:
            _runtime.capture_gap("Lightning train data loaders (SlsaCallback.on_train_start)",
                                 exc)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        try:
            runtime = _runtime.current()
            if runtime is None or not trainer.is_global_zero:
                return
            kept: dict[str, float] = {}
            for callback in trainer.callbacks:
                if isinstance(callback, ModelCheckpoint):
                    for path in (*callback.best_k_models, callback.best_model_path,
                                 callback.last_model_path):
                        if path and os.path.isfile(path):
                            kept[os.path.abspath(path)] = os.path.getmtime(path)
        except Exception as exc:
            _runtime.capture_gap("Lightning checkpoints (SlsaCallback.on_fit_end)", exc)
            return
        for path in sorted(kept, key=kept.__getitem__):  # the last written is the subject
            try:
                _runtime.record_artifact(path, role="checkpoint")
            except Exception as exc:  # kept on disk; only its record is not
                _runtime.capture_gap(f"checkpoint {path}", exc)
