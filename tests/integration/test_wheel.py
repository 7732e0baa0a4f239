"""The wheel holds the library only: no demo, no test harness, no developer tool."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What must never ship: the demo, the harness and the dev tool, by module name.
NOT_SHIPPED = ("demo", "support", "background", "faults", "swtpm", "localjob", "sim",
               "protogen", "examples", "tools", "tests")


@pytest.mark.multiprocess
def test_the_wheel_lists_only_the_library(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("slsa_dist", "examples", "tools", "tests"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = ("import sys, setuptools.build_meta as b; "
             "print(b.build_wheel(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=source,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = tmp_path / "dist" / done.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert all(n.startswith("slsa_dist/") for n in modules), modules
    parts = {part.removesuffix(".py") for n in modules for part in n.split("/")}
    assert not parts & set(NOT_SHIPPED), sorted(parts & set(NOT_SHIPPED))
    for expected in ("slsa_dist/collect/_merge.py", "slsa_dist/model/_records.py",
                     "slsa_dist/verify/_bundle.py", "slsa_dist/cli/__init__.py",
                     "slsa_dist/py.typed"):
        assert expected in names
