"""PyTorch Lightning, by the name users spell::

    from slsa_dist.lightning import SlsaCallback
    Trainer(..., callbacks=[SlsaCallback()])

Implemented in :mod:`slsa_dist.integrations`.
"""

from __future__ import annotations

from slsa_dist.integrations._lightning import SlsaCallback

__all__ = ["SlsaCallback"]
