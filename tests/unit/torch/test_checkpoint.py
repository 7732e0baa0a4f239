"""The digesting DCP writer: digests taken while writing equal the bytes on disk."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch.distributed.checkpoint.state_dict_saver import save  # noqa: E402

from slsa_dist.capture._dcp import (  # noqa: E402
    _COPY_BELOW,
    DigestingFileSystemWriter,
    _HashingFileSystem,
    _HashingStream,
)
from slsa_dist.digest._manifest import new_hasher  # noqa: E402


def file_digest(path: Path, algorithm: str) -> str:
    hasher = new_hasher(algorithm)
    hasher.update(path.read_bytes())
    return str(hasher.hexdigest())


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_a_save_is_digested_as_written(tmp_path: Path, algorithm: str) -> None:
    # A tensor far over the copy threshold (hashed in place, beside the write), plus
    # small tensors and zip headers whose bytes arrive as copies.
    big = torch.arange(int(10.5 * _COPY_BELOW) // 4, dtype=torch.float32)
    state = {"big": big, "small": torch.ones(3), "odd": torch.zeros(1001, dtype=torch.int8)}
    writer = DigestingFileSystemWriter(tmp_path / "ckpt", algorithm=algorithm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no process group: DCP warns and saves locally
        save({"model": state}, storage_writer=writer)
    written = {r["file"]: r for r in writer.records}
    on_disk = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert set(written) == on_disk
    assert any(r["size"] > 10 * _COPY_BELOW for r in written.values())
    for name, record in written.items():
        path = tmp_path / "ckpt" / name
        assert record[algorithm] == file_digest(path, algorithm), name
        assert record["size"] == path.stat().st_size


class ShortFile(io.RawIOBase):
    """A raw file that takes at most ``limit`` bytes per write."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        taken = bytes(memoryview(data)[: self.limit])
        self.data += taken
        return len(taken)


def test_a_short_write_is_reported_and_marks_the_stream_for_a_reread() -> None:
    raw = ShortFile(limit=1000)
    stream = _HashingStream(raw, "sha256")
    payload = bytes(range(256)) * 20
    assert stream.write(payload) == 1000  # what the file took, as a raw write reports it
    stream.digest()
    assert bytes(raw.data) == payload[:1000]
    assert stream.diverged  # the hasher was handed more than the file took


def test_a_stream_that_diverged_is_digested_from_the_file(tmp_path: Path) -> None:
    fs = _HashingFileSystem("sha256")
    path = tmp_path / "f.bin"
    with fs.create_stream(path, "wb") as stream:
        stream.write(b"a" * 100)
        assert isinstance(stream, _HashingStream)
        stream.diverged = True  # as after a short write
    assert str(path) not in fs.digests


def test_a_seek_inside_a_stream_falls_back_to_reading_the_file(tmp_path: Path) -> None:
    fs = _HashingFileSystem("sha256")
    path = tmp_path / "f.bin"
    with fs.create_stream(path, "wb") as stream:
        stream.write(b"a" * 100)
        stream.seek(10)
        stream.write(b"b" * 10)
    assert path.read_bytes() == b"a" * 10 + b"b" * 10 + b"a" * 80
    assert str(path) not in fs.digests  # the streamed digest would be of other bytes


def test_an_unseeked_stream_records_the_digest_of_the_file(tmp_path: Path) -> None:
    fs = _HashingFileSystem("sha256")
    path = tmp_path / "f.bin"
    with fs.create_stream(path, "wb") as stream:
        stream.write(b"x" * (_COPY_BELOW + 7))  # in place
        stream.write(b"y" * 7)  # copied
    assert fs.digests[str(path)] == (file_digest(path, "sha256"), _COPY_BELOW + 14)


def test_a_rank_with_an_empty_plan_reports_the_empty_file_it_creates(tmp_path: Path) -> None:
    # DCP gives each replicated tensor to one rank; with more ranks than tensors some
    # plans are empty, yet FileSystemWriter still creates that rank's (empty) data file.
    from torch.distributed.checkpoint.default_planner import DefaultSavePlanner
    from torch.distributed.checkpoint.filesystem import _StoragePrefix
    from torch.distributed.checkpoint.planner import SavePlan

    writer = DigestingFileSystemWriter(tmp_path / "ckpt")
    writer.set_up_storage_writer(False)
    (tmp_path / "ckpt").mkdir()
    planner = DefaultSavePlanner()
    writer.write_data(SavePlan(items=[], storage_data=_StoragePrefix("__3_")), planner).wait()
    on_disk = {p.name: p.stat().st_size for p in (tmp_path / "ckpt").iterdir()}
    assert on_disk == {"__3_0.distcp": 0}
    assert [(r["file"], r["size"]) for r in writer.records] == [("__3_0.distcp", 0)]
    assert writer.records[0]["sha256"] == file_digest(tmp_path / "ckpt" / "__3_0.distcp", "sha256")
