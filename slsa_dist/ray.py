"""Ray Train (V2) under one provenance per run, by the name users spell::

    from slsa_dist.ray import SlsaCallback
    trainer = TorchTrainer(train_fn, ..., run_config=RunConfig(callbacks=[SlsaCallback()]))

or ``RAY_TRAIN_CALLBACKS=slsa_dist.ray.SlsaCallback``. Implemented in
:mod:`slsa_dist.integrations`.
"""

from __future__ import annotations

from slsa_dist.integrations._ray import SlsaCallback, report_with_digests

__all__ = ["SlsaCallback", "report_with_digests"]
