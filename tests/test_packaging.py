"""The package's shape: its public surface is docs/api.md, and its floors hold.

Pure file and import checks (no processes): the public surface is every module path
without a ``_``-prefixed part and the names in its ``__all__``; the floors are
checked by ``tools/imports.py`` (no import circles, no import up a floor).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import slsa_dist

from tools import imports

ROOT = Path(__file__).resolve().parents[1]
_ROW = re.compile(r"^\| `(slsa_dist[\w.]*)` \| `(\w+)` \|", re.M)


def _documented() -> set[tuple[str, str]]:
    return set(_ROW.findall((ROOT / "docs" / "api.md").read_text()))


def _public_modules() -> list[str]:
    names = ["slsa_dist", *(m.name for m in pkgutil.walk_packages(slsa_dist.__path__,
                                                                   "slsa_dist."))]
    return [n for n in names
            if not any(part.startswith("_") for part in n.split(".")[1:])]


def test_the_public_surface_is_the_api_document() -> None:
    surface: set[tuple[str, str]] = set()
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name}: a public module without __all__"
        surface.update((name, attribute) for attribute in exported)
        for attribute in exported:
            assert hasattr(module, attribute), f"{name}.__all__ names {attribute}, not there"
    documented = _documented()
    assert surface - documented == set(), "public but not in docs/api.md"
    assert documented - surface == set(), "in docs/api.md but not public"


def test_most_of_the_code_is_private() -> None:
    lines = {True: 0, False: 0}
    for path in (ROOT / "slsa_dist").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts[1:]
        private = any(p.startswith("_") and p != "__init__" for p in parts)
        lines[private] += len(path.read_text().splitlines())
    assert lines[True] / (lines[True] + lines[False]) > 0.8, lines


def test_the_floors_hold_no_circles_no_upward_imports() -> None:
    edges = imports.graph()
    assert imports.cycles(edges) == []
    assert imports.upward(edges) == []


def test_a_training_rank_loads_no_coordinator_signing_or_attestation_code() -> None:
    probe = ("import sys, slsa_dist.capture._auto, slsa_dist.integrations._contract; "
             "print('\\n'.join(m for m in sys.modules if m.startswith('slsa_dist')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True, cwd=ROOT)
    loaded = set(done.stdout.split())
    forbidden = {m for m in loaded if m.startswith(("slsa_dist.collect._merge",
                                                    "slsa_dist.collect._ingest",
                                                    "slsa_dist.collect._state",
                                                    "slsa_dist.collect._assemble",
                                                    "slsa_dist.collect._coordinator",
                                                    "slsa_dist.collect._journal",
                                                    "slsa_dist.model._ledger",
                                                    "slsa_dist.sign", "slsa_dist.attest",
                                                    "slsa_dist.verify"))}
    assert forbidden == set()
