"""The torchrun plugin, by the name torchrun's entry point and users spell:
``torchrun --logs-specs slsa`` (``slsa_dist.torch.plugin:SlsaLogsSpecs``).
Implemented in :mod:`slsa_dist.integrations`."""

from __future__ import annotations

from slsa_dist.integrations._torch_plugin import SlsaEventHandler, SlsaLogsSpecs

__all__ = ["SlsaEventHandler", "SlsaLogsSpecs"]
