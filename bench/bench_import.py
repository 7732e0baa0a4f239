"""What a training rank pays to import slsa-dist, beside what the whole package costs.

    PYTHONPATH=. python bench/bench_import.py [--runs 5]

Each figure is the median over fresh interpreters (``-X importtime``), side by side in
one run: the rank's imports (zero-code capture and the rank agent: what ``-m
slsa_dist.exec`` loads before the script) against every module of the package. The
rank must load none of the coordinator, signing, attestation or verification code
(ADR 0013; tests/test_packaging.py holds that), so its share stays a fraction.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

RANK = "import slsa_dist.capture._auto, slsa_dist.integrations._contract"
EVERYTHING = ("import pkgutil, importlib, slsa_dist\n"
              "for m in pkgutil.walk_packages(slsa_dist.__path__, 'slsa_dist.'):\n"
              "    if not m.name.endswith('__main__') and '_boot' not in m.name:\n"
              "        try: importlib.import_module(m.name)\n"
              "        except ImportError: pass")


def measure(code: str) -> tuple[int, float]:
    """(slsa_dist modules loaded, their cumulative import time in ms)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, timeout=300, check=True)
    modules = 0
    total = 0.0
    for line in done.stderr.splitlines():
        if "|" not in line or "slsa_dist" not in line:
            continue
        _, self_us, name = (part.strip() for part in line.split("|"))
        if name.startswith("slsa_dist"):
            modules += 1
            total += int(self_us.split(":")[-1].strip()) / 1000
    return modules, total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rank, everything = [], []
    for _ in range(args.runs):  # alternated, so load on the machine hits both alike
        rank.append(measure(RANK))
        everything.append(measure(EVERYTHING))
    rank_modules, whole_modules = rank[0][0], everything[0][0]
    rank_ms = statistics.median(t for _, t in rank)
    whole_ms = statistics.median(t for _, t in everything)
    print(f"{'':28}{'modules':>10}{'own ms':>10}")
    print(f"{'a rank (capture + agent)':28}{rank_modules:>10}{rank_ms:>10.1f}")
    print(f"{'the whole package':28}{whole_modules:>10}{whole_ms:>10.1f}")
    print(f"{'rank / whole':28}{rank_modules / whole_modules:>10.2f}{rank_ms / whole_ms:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
