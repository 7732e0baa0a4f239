"""Launch scripts pass shellcheck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import need

LAUNCH = Path(__file__).parents[3] / "launch"


@pytest.mark.parametrize("script", sorted([*LAUNCH.rglob("*.sh"), *LAUNCH.rglob("*.sbatch")]),
                         ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    need(shutil.which("shellcheck") is not None, "shellcheck is not installed")
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout
