"""Shared fixtures. Markers are declared in pyproject.toml (--strict-markers)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
sys.path.insert(0, str(ASSETS))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip on a user's machine when a system component is missing; fail under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def vectors() -> Path:
    return ASSETS / "vectors"


@pytest.fixture
def chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """raw.csv -> clean (data step) -> model (training step) -> quantized (model step),
    real ``slsa-dist run`` bundles in a store, and a policy (support/chains.py)."""
    from support.chains import build_chain

    built = build_chain(tmp_path)
    capsys.readouterr()
    return built
