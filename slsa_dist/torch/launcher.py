"""``slsa-torchrun`` as a module: ``python -m slsa_dist.torch.launcher ...``.
Implemented in :mod:`slsa_dist.integrations`."""

from __future__ import annotations

from slsa_dist.integrations._torchrun import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
