"""Hashing throughput: slsa-dist vs model_signing vs this machine's SHA-256 limit.

Same files, same run, interleaved rounds, from the page cache:
  * a 2 GiB directory of 4 files, and one 2 GiB file;
  * model_signing's library hashing (SHA-256; files, and shards for one file);
  * the machine limit: OpenSSL SHA-256 (hashlib) on one core, times the cores;
  * slsa-dist SHA-256 (files for the directory, byte-range shards for the
    single file so it uses every core), BLAKE3, and a cached re-digest;
  * peak RSS of a slsa-dist digest of each input, in a fresh process.

    .venv/bin/python bench/bench_digest.py [--gib 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from model_signing import hashing as ms_hashing

from slsa_dist.digest._cache import DigestCache
from slsa_dist.digest._manifest import digest_path

SHARD = 256 * 2**20  # slsa-dist shard size for the single file
TARGETS = {"sha256_vs_ms": 1.1, "sha256_vs_limit": 0.9, "blake3_vs_ms": 2.0, "cached": 0.02,
           "rss_mib": 256}


def make_file(path: Path, size: int) -> None:
    block = os.urandom(64 * 2**20)
    with path.open("wb") as handle:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            handle.write(chunk)
            written += len(chunk)


def machine_limit() -> float:
    """hashlib (OpenSSL) SHA-256 bytes/s on one core, times the cores."""
    buffer = os.urandom(256 * 2**20)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        hashlib.sha256(buffer).digest()
        rates.append(len(buffer) / (time.perf_counter() - start))
    return max(rates) * (os.cpu_count() or 1)


def peak_rss_mib(path: Path, shard: bool, use_mmap: bool = False) -> float:
    method = "shards" if shard else "files"
    code = ("import sys; from pathlib import Path; from slsa_dist.digest import digest_path; "
            "digest_path(sys.argv[1], method=sys.argv[2], shard_size=int(sys.argv[3]), "
            "use_mmap=sys.argv[4] == '1'); "
            "print([x for x in Path('/proc/self/status').read_text().splitlines() "
            "if x.startswith('VmHWM')][0].split()[1])")
    done = subprocess.run([sys.executable, "-c", code, str(path), method, str(SHARD),
                           "1" if use_mmap else "0"],
                          capture_output=True,
                          text=True, timeout=600, check=True)
    return int(done.stdout.strip()) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    total = int(args.gib * 2**30)
    out = Path("bench-out")  # git ignores it: a run's gigabytes never reach a commit
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        root = Path(tmp)
        directory = root / "model"
        directory.mkdir()
        for i in range(4):
            make_file(directory / f"part-{i}.safetensors", total // 4)
        single = root / "single.bin"
        make_file(single, total)
        for path in [*directory.iterdir(), single]:  # into the page cache
            digest_path(path, algorithm="blake3")
        limit = machine_limit()

        cache = DigestCache(path=root / "cache.sqlite")
        digest_path(directory, cache=cache)
        configs: dict[str, dict[str, Callable[[], object]]] = {
            "dir": {
                "model_signing sha256": lambda: ms_hashing.Config().use_file_serialization(
                    hashing_algorithm="sha256").hash(directory),
                "slsa-dist sha256": lambda: digest_path(directory),
                "slsa-dist sha256 --mmap": lambda: digest_path(directory, use_mmap=True),
                "slsa-dist blake3": lambda: digest_path(directory, algorithm="blake3"),
                "slsa-dist cached": lambda: digest_path(directory, cache=cache),
            },
            "file": {
                "model_signing sha256": lambda: ms_hashing.Config().use_file_serialization(
                    hashing_algorithm="sha256").hash(single),
                "model_signing sha256 shards": lambda: ms_hashing.Config()
                .use_shard_serialization(hashing_algorithm="sha256").hash(single),
                "slsa-dist sha256": lambda: digest_path(single, method="shards",
                                                        shard_size=SHARD),
                "slsa-dist sha256 --mmap": lambda: digest_path(single, method="shards",
                                                               shard_size=SHARD, use_mmap=True),
                "slsa-dist blake3": lambda: digest_path(single, algorithm="blake3"),
            },
        }
        seconds: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for case, runs in configs.items():
                names = list(runs) if round_ % 2 == 0 else list(reversed(runs))
                for name in names:
                    start = time.perf_counter()
                    runs[name]()
                    seconds.setdefault((case, name), []).append(time.perf_counter() - start)
        rss = {"dir": peak_rss_mib(directory, False), "file": peak_rss_mib(single, True),
               "dir --mmap": peak_rss_mib(directory, False, True),
               "file --mmap": peak_rss_mib(single, True, True)}
        cache.close()

    median = {k: statistics.median(v) for k, v in seconds.items()}
    gib = total / 2**30
    print(f"{gib:g} GiB, {args.rounds} interleaved rounds, page cache, {os.cpu_count()} cores")
    print(f"machine limit (OpenSSL SHA-256, 1 core x {os.cpu_count()}): "
          f"{limit / 2**30:.2f} GiB/s")
    for case, label in (("dir", "directory of 4 files"), ("file", "one file")):
        print(f"\n{label}:")
        for (c, name), value in median.items():
            if c == case:
                print(f"  {name:<30} {value:7.3f} s  {gib / value:6.2f} GiB/s")
    checks = []
    for case in ("dir", "file"):
        ms = median[(case, "model_signing sha256")]
        for mode in ("", " --mmap"):
            ours = median[(case, f"slsa-dist sha256{mode}")]
            checks += [
                (f"{case}: sha256{mode} vs model_signing", ms / ours, TARGETS["sha256_vs_ms"],
                 ">="),
                (f"{case}: sha256{mode} vs machine limit", (total / ours) / limit,
                 TARGETS["sha256_vs_limit"], ">="),
            ]
        checks += [
            (f"{case}: blake3 vs model_signing sha256", ms / median[(case, "slsa-dist blake3")],
             TARGETS["blake3_vs_ms"], ">="),
            (f"{case}: peak RSS MiB", rss[case], TARGETS["rss_mib"], "<="),
            (f"{case}: peak RSS MiB --mmap", rss[f"{case} --mmap"], TARGETS["rss_mib"], "<="),
        ]
    checks.append(("dir: cached re-digest / full", median[("dir", "slsa-dist cached")]
                   / median[("dir", "slsa-dist sha256")], TARGETS["cached"], "<="))
    print()
    for name, value, target, op in checks:
        ok = value >= target if op == ">=" else value <= target
        print(f"  {name:<42} {value:8.3f}   target {op} {target:<6} {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
