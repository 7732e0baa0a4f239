"""Capture: what runs inside the training process, without the transport.

Private modules: ``_runtime`` (the process's :class:`Runtime` and the explicit record
API, :func:`slsa_dist.record_artifact` ...), ``_auto`` (zero-code capture: the audit
hook for reads, the DataLoader wrapper, the save hooks), ``_samplers``
(:class:`slsa_dist.torch.RecordingSampler`), ``_dcp`` (the digesting DCP writer),
``_inventory`` (host, software and devices). Capture reports through a
:class:`~._runtime.Recorder` an integration hands it; it never imports ``collect``
nor ``sign`` (docs/architecture.md).
"""

from __future__ import annotations

__all__: list[str] = []
