"""The coordinator's file of sealed rank records: appended once, read back by offset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slsa_dist.collect import _coordinator as coordinator_module
from slsa_dist.collect._coordinator import RecordFile


def test_records_come_back_by_their_handles_and_the_file_goes_with_close(
        tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "j.records")
    handles = [records.put(f'{{"rank":{r}}}'.encode() * (r + 1)) for r in range(50)]
    assert [records.get(h) for h in handles[::-1]] == \
        [f'{{"rank":{r}}}'.encode() * (r + 1) for r in range(50)][::-1]
    assert (tmp_path / "j.records").stat().st_mode & 0o777 == 0o600
    records.close()
    records.close()  # idempotent
    assert not (tmp_path / "j.records").exists()


def test_a_write_that_fails_half_way_costs_only_that_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = RecordFile(tmp_path / "j.records")
    first = records.put(b"first")
    real = os.pwrite
    calls = 0

    def half_then_full(fd: int, data: memoryview, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real(fd, data[: len(data) // 2], offset)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(coordinator_module.os, "pwrite", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        records.put(b"x" * 100)
    monkeypatch.setattr(coordinator_module.os, "pwrite", real)
    second = records.put(b"second")
    assert records.get(first) == b"first"
    assert records.get(second) == b"second"
    records.close()
