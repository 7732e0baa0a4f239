"""A one-commit git work tree holding ``train.py``, for code-identity tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path


def one_commit_repo(root: Path) -> Callable[..., str]:
    """Make ``root`` a repository with ``train.py`` committed; returns ``git(*args)``."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (root / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("commit", "-qm", "x")
    return git
