"""Public names of a package, imported from their private modules on first use.

A package's ``__init__`` names its public API without importing it: a training rank
that needs ``slsa_dist.model._digests`` does not load the ledger, and an agent that
needs ``slsa_dist.collect._spool`` does not load the coordinator (PEP 562).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that finds each name in ``where``
    (name -> private module, relative to the package) and keeps it once found."""

    def lookup(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return lookup
