"""Zero-code capture of an unchanged script: ``slsa-torchrun ... -m slsa_dist.exec
train.py ARGS`` (or ``-m slsa_dist.exec -m package.module``). Implemented in
:mod:`slsa_dist.integrations`."""

from __future__ import annotations

import sys

from slsa_dist.integrations._exec import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
