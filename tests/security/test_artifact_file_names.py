"""Item 5: file names are part of what is verified, not only the manifest root.

The OMS root hashes the per-file digests in name order, so a rename that keeps
the order, a move into a folder that sorts the same, or a file holding the raw
digest list all reproduce the root. The signed checkpoint record names every
file: the artifact on disk must match it file by file.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main

from support.background import signing_key
from support.chains import run_step


@pytest.fixture
def signed_dir(tmp_path: Path) -> tuple[Path, Path, Path]:
    key, public = signing_key(tmp_path)
    out = tmp_path / "model"
    bundle = run_step(tmp_path, key, "step-1",
                      f"import os; os.makedirs({str(out)!r}); "
                      f"open({str(out / 'a.bin')!r}, 'wb').write(b'A' * 10); "
                      f"open({str(out / 'm.bin')!r}, 'wb').write(b'M' * 10)", out, [])
    return bundle, public, out


def verify(bundle: Path, public: Path, artifact: Path) -> int:
    return cli_main(["verify", str(bundle), "--key", str(public), "--artifact", str(artifact)])


def test_the_untouched_directory_verifies(signed_dir: tuple[Path, Path, Path]) -> None:
    assert verify(*signed_dir) == 0


def test_a_renamed_file_that_keeps_the_order_fails(signed_dir: tuple[Path, Path, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, out = signed_dir
    (out / "m.bin").rename(out / "n.bin")
    assert verify(bundle, public, out) == 1
    assert "missing: m.bin" in capsys.readouterr().out


def test_a_file_moved_into_a_folder_that_sorts_the_same_fails(
        signed_dir: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, out = signed_dir
    (out / "a").mkdir()
    (out / "a.bin").rename(out / "a" / "a.bin")
    assert verify(bundle, public, out) == 1
    assert "unexpected: a/a.bin" in capsys.readouterr().out


def test_a_file_holding_the_raw_digest_list_does_not_match_the_directory(
        signed_dir: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, public, _ = signed_dir
    forged = tmp_path / "forged.bin"
    forged.write_bytes(hashlib.sha256(b"A" * 10).digest() + hashlib.sha256(b"M" * 10).digest())
    assert verify(bundle, public, forged) == 1


def test_a_copy_elsewhere_with_the_same_names_still_verifies(
        signed_dir: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, public, out = signed_dir
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(out, copy)
    assert verify(bundle, public, copy) == 0
