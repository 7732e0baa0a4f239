"""Old import paths of modules that moved in the stage layout (ADR 0007).

``import slsa_dist.agent`` still works for one release: it warns and hands
back the module at its new path (the same object, so state and classes are
shared). One table of moves, one finder, instead of a shim file per path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

MOVED = {
    "slsa_dist.agent": "slsa_dist.collect.agent",
    "slsa_dist.coordinator": "slsa_dist.collect.coordinator",
    "slsa_dist.inventory": "slsa_dist.capture.inventory",
    "slsa_dist.run": "slsa_dist.capture.step",
    "slsa_dist.dsse": "slsa_dist.sign.dsse",
    "slsa_dist.keys": "slsa_dist.sign.keys",
    "slsa_dist.ca": "slsa_dist.sign.ca",
    "slsa_dist.oms": "slsa_dist.sign.oms",
    "slsa_dist.chain": "slsa_dist.verify.chain",
    "slsa_dist.store": "slsa_dist.verify.store",
    "slsa_dist.vsa": "slsa_dist.verify.vsa",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.target}; the old path goes away in 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        del module  # already executed under its new name


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        del path, target
        new = MOVED.get(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
