"""DCP save with digests (DigestingFileSystemWriter) against plain DCP save, interleaved.

Same state dict, same file system, alternating runs; the ratio of medians is
the cost of digesting while writing. Target: <= 1.05x.

    .venv/bin/python bench/bench_dcp.py [--mib 512] [--rounds 7]
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
            ) -> tuple[float, float, float]:
    """Median plain, median digesting, median of paired ratios (ABBA order)."""
    def digesting_writer(path: Path) -> Any:
        return DigestingFileSystemWriter(path, algorithm=algorithm)

    timed(FileSystemWriter, state, root)  # warm up both paths
    timed(digesting_writer, state, root)
    plain: list[float] = []
    digesting: list[float] = []
    for round_ in range(rounds):  # ABBA order: neither always runs after the other
        order: list[tuple[Callable[[Path], Any], list[float]]] = [
            (FileSystemWriter, plain), (digesting_writer, digesting)]
        for make, times in order if round_ % 2 == 0 else reversed(order):
            times.append(timed(make, state, root))
    # Each round's pair ran back to back: the median of paired ratios cancels the slow
    # drift of fsync and writeback cost that dominates the noise here.
    ratio = statistics.median(b / a for a, b in zip(plain, digesting, strict=True))
    return statistics.median(plain), statistics.median(digesting), ratio


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # dcp warns that no process group is initialized
    state = state_dict(args.mib)
    print(f"DCP save of {args.mib} MiB, {args.rounds} interleaved rounds per row "
          "(fsync on, as by default)")
    print(f"  {'per-file digest':<16} {'plain s':>8} {'digesting s':>12} {'paired ratio':>13}"
          f"   target <= {TARGET}x")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for algorithm in ("sha256", "blake3"):
            p, d, ratio = compare(algorithm, state, Path(tmp), args.rounds)
            print(f"  {algorithm:<16} {p:>8.3f} {d:>12.3f} {ratio:>12.3f}x   "
                  f"{'PASS' if ratio <= TARGET else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
