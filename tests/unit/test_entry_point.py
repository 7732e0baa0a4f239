"""Every rank of a job names its script alike, however its launcher passed it.

A fresh user's Lightning job run as ``python train.py`` (Lightning's own launcher) was
INCOMPLETE: Lightning starts its other process with the script's absolute path, so
the ranks' ``entryPoint`` values differed (``train.py`` vs ``/abs/train.py``) and the
coordinator recorded a conflict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.integrations._contract import entry_point_name as _entry_point


def test_a_relative_and_an_absolute_name_of_one_script_are_one_entry_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    monkeypatch.chdir(tmp_path)
    assert _entry_point("train.py") == _entry_point(str(tmp_path / "train.py")) == "train.py"
    assert _entry_point("./train.py") == "train.py"


def test_a_script_outside_the_working_directory_is_named_absolutely(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print(1)\n")
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    expected = str((tmp_path / "code" / "train.py").resolve())
    assert _entry_point("../code/train.py") == _entry_point(expected) == expected


def test_what_is_no_file_is_kept_as_given() -> None:
    assert _entry_point("-m") == "-m"
    assert _entry_point("ray.train") == "ray.train"
    assert _entry_point(None) == _entry_point("") == ""
