"""Integrations: torch (``slsa-torchrun``, the torchrun plugin), Ray Train, Hugging Face,
Lightning, ``-m slsa_dist.exec`` and ``slsa-dist run``, in one place.

Every integration keeps one contract (:mod:`._contract`, which also holds
``slsa_dist.init``): start the node agent once per node, record attempts from the
launcher's truth, turn capture on in each training process, finish each rank with its
real exit state. This is the floor where capture meets the transport (``collect``).

Users reach them by the names they type, thin re-export modules listed in
docs/api.md: ``slsa_dist.torch``, ``slsa_dist.torch.plugin``, ``slsa_dist.ray``,
``slsa_dist.hf``, ``slsa_dist.lightning``, ``slsa_dist.exec``.
"""

from __future__ import annotations

__all__: list[str] = []
