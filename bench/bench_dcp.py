"""DCP save with digests (DigestingFileSystemWriter) against plain DCP save, interleaved.

Same state dict, same file system, alternating runs. Three writers:

* plain: ``FileSystemWriter``, what users run without slsa-dist;
* digesting: ``DigestingFileSystemWriter`` (writes in slices, hashes beside);
* sliced: the same writer with hashing switched off, so that the cost of the
  digests alone (digesting / sliced) is visible apart from the write path.

The target is on digesting / plain (what a user pays): <= 1.05x.

    .venv/bin/python bench/bench_dcp.py [--mib 512] [--rounds 16]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.filesystem import FileSystemWriter
from torch.distributed.checkpoint.state_dict_saver import save

from slsa_dist.torch.checkpoint import DigestingFileSystemWriter

TARGET = 1.05


class SlicedWriter(DigestingFileSystemWriter):
    """The digesting writer's write path with the hashing taken out (a baseline only)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fs.hashing = False

    def _report(self, files: Any) -> None:
        del files  # nothing was hashed, and nothing is read back


def state_dict(mib: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    per = 32  # MiB per tensor, like the layers of a mid-size model
    return {f"layer{i}.weight": torch.randn(per * 2**20 // 4) for i in range(max(1, mib // per))}


def timed(make_writer: Callable[[Path], Any], state: dict[str, torch.Tensor],
          root: Path) -> float:
    target = root / "ckpt"
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    save({"model": state}, storage_writer=make_writer(target))
    return time.perf_counter() - start


def compare(algorithm: str, state: dict[str, torch.Tensor], root: Path, rounds: int
            ) -> dict[str, float]:
    """Median seconds per writer and medians of paired ratios (rotating order)."""
    def digesting_writer(path: Path) -> Any:
        return DigestingFileSystemWriter(path, algorithm=algorithm)

    writers: list[tuple[str, Callable[[Path], Any]]] = [
        ("plain", FileSystemWriter), ("digesting", digesting_writer), ("sliced", SlicedWriter)]
    times: dict[str, list[float]] = {name: [] for name, _ in writers}
    for _, make in writers:  # warm up every path
        timed(make, state, root)
    for round_ in range(rounds):  # rotate and reverse: no writer always runs after another
        order = writers[round_ % 3:] + writers[: round_ % 3]
        for name, make in order if round_ % 2 == 0 else reversed(order):
            times[name].append(timed(make, state, root))
    # Each round's runs are close in time: the median of per-round ratios cancels the slow
    # drift of fsync and writeback cost that dominates the noise here.
    def paired(a: str, b: str) -> float:
        return statistics.median(y / x for x, y in zip(times[a], times[b], strict=True))

    result = {name: statistics.median(values) for name, values in times.items()}
    result["vs plain"] = paired("plain", "digesting")
    result["hashing alone"] = paired("sliced", "digesting")
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # dcp warns that no process group is initialized
    state = state_dict(args.mib)
    print(f"DCP save of {args.mib} MiB, {args.rounds} interleaved rounds per row "
          "(fsync on, as by default)")
    print(f"  {'per-file digest':<16} {'plain s':>8} {'sliced s':>9} {'digesting s':>12}"
          f" {'hashing alone':>14} {'vs plain':>9}   target (vs plain) <= {TARGET}x")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for algorithm in ("sha256", "blake3"):
            r = compare(algorithm, state, Path(tmp), args.rounds)
            ratio = r["vs plain"]
            print(f"  {algorithm:<16} {r['plain']:>8.3f} {r['sliced']:>9.3f} "
                  f"{r['digesting']:>12.3f} {r['hashing alone']:>13.3f}x {ratio:>8.3f}x   "
                  f"{'PASS' if ratio <= TARGET else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
