"""Hugging Face ``Trainer``, by the name users spell::

    from slsa_dist.hf import SlsaTrainerCallback
    Trainer(..., callbacks=[SlsaTrainerCallback()])

Implemented in :mod:`slsa_dist.integrations`.
"""

from __future__ import annotations

from slsa_dist.integrations._hf import SlsaTrainerCallback

__all__ = ["SlsaTrainerCallback"]
