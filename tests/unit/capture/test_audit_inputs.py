"""The audit hook's input filter: what a rank reads is recorded, a failed open is not."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.capture._auto import Capture


class Recorder:
    """Stands in for the rank's agent: the dependencies it was given."""

    def __init__(self) -> None:
        self.dependencies: list[dict[str, Any]] = []

    def record_dependency(self, kind: str, **fields: Any) -> None:
        self.dependencies.append({"kind": kind, **fields})


class Runtime:
    finished = False

    def __init__(self) -> None:
        self.agent = Recorder()
        self.recorded_roots: set[str] = set()

    def artifact_name(self, path: str) -> str:
        return Path(path).name


def settle(capture: Capture, runtime: Runtime, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(runtime.agent.dependencies) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)


def test_a_read_is_recorded_and_a_failed_open_is_not_even_warned_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SLSA_CAPTURE_INCLUDE", str(tmp_path))
    runtime = Runtime()
    capture = Capture(runtime)  # type: ignore[arg-type]
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    (tmp_path / "out.bin").write_bytes(b"y" * 10)
    with caplog.at_level(logging.WARNING):
        # an editable install's path hook entry, probed relative to the working directory
        capture.audit("open", (str(tmp_path / "__editable__.x.finder.__path_hook__"), "r", 0))
        capture.audit("open", (str(data), "r", 0))
        capture.audit("open", (str(tmp_path / "out.bin"), "wb", 0))  # a write: not an input
        capture.audit("open", (str(tmp_path / "out.bin"), "r", 0))  # its own output, read back
        settle(capture, runtime, 1)
    assert [d["name"] for d in runtime.agent.dependencies] == ["data.bin"]
    assert not [r for r in caplog.records if "could not digest" in r.getMessage()]


def test_a_directory_opened_to_remove_it_is_no_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """shutil.rmtree (a TemporaryDirectory's cleanup) opens the folder it removes: that
    read no data, and digesting it later found it gone (a capture gap, an incomplete
    job)."""
    import os
    import shutil

    monkeypatch.setenv("SLSA_CAPTURE_INCLUDE", str(tmp_path))
    runtime = Runtime()
    capture = Capture(runtime)  # type: ignore[arg-type]
    gaps: list[str] = []
    monkeypatch.setattr("slsa_dist.capture._auto.capture_gap",
                        lambda what, why: gaps.append(f"{what}: {why}"))
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"w")
    capture.audit("open", (str(folder), None, os.O_RDONLY))
    shutil.rmtree(folder)
    time.sleep(0.2)
    assert runtime.agent.dependencies == []
    assert gaps == []
