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


def _uri(tmp_path: Path, remote: str | None) -> str:
    git = one_commit_repo(tmp_path)
    if remote is not None:
        git("remote", "add", "origin", remote)
    code = _code_dependency(tmp_path / "train.py")
    assert code is not None
    uri = str(code["uri"])
    commit = code["digest"]["gitCommit"]
    assert uri.startswith("git+")
    assert uri.endswith(f"@{commit}")
    return uri.removeprefix("git+").removesuffix(f"@{commit}")


def test_code_uris_are_rfc_3986_uris_whatever_the_remote(tmp_path: Path) -> None:
    """#27 item 8: scp-style and local remotes became ``git+github.com:o/x.git@...`` and
    ``git+/path@...``, which are not URIs; each now has a scheme and an authority or path
    a URI parser reads back, and no credentials."""
    from urllib.parse import urlsplit

    cases = {
        "git@github.com:o/x.git": "ssh://github.com/o/x.git",
        "github.com:o/x.git": "ssh://github.com/o/x.git",
        "https://user:TOKEN@github.com/o/x.git?sig=1": "https://github.com/o/x.git",
        "/srv/repos/x.git": "file:///srv/repos/x.git",
        None: (tmp_path / "none").resolve().as_uri(),
    }
    for index, (remote, expected) in enumerate(cases.items()):
        where = tmp_path / ("none" if remote is None else f"r{index}")
        where.mkdir()
        uri = _uri(where, remote)
        assert uri == expected, (remote, uri)
        parts = urlsplit(uri)
        assert parts.scheme in ("ssh", "https", "file")
        assert "@" not in parts.netloc
        assert "TOKEN" not in uri
