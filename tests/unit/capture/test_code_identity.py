"""The code a run used, identified (#15 item 5)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from slsa_dist.integrations._contract import _code_dependency

from support.gitrepo import one_commit_repo


def test_a_dirty_tree_is_identified_by_the_digest_of_its_diff(tmp_path: Path) -> None:
    """#15 item 5: a dirty work tree said only 'dirty'; the diff is now named by digest."""
    git = one_commit_repo(tmp_path)
    clean = _code_dependency(tmp_path / "train.py")
    assert clean is not None
    assert clean["annotations"] == {"slsadist_dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    dirty = _code_dependency(tmp_path / "train.py")
    assert dirty is not None
    expected = hashlib.sha256(git("diff", "--no-color", "--no-ext-diff", "HEAD").strip()
                              .encode()).hexdigest()
    assert dirty["annotations"] == {"slsadist_dirty": True,
                                    "slsadist_dirtyDiff": {"sha256": expected}}
