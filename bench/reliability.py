"""Reliability in one command: every fault scenario and the extended fuzz run.

Prints faults survived, inputs fuzzed, events recorded, acknowledged and in
the provenance, and events lost (must be 0).

    PYTHONPATH=.:tests .venv/bin/python bench/reliability.py [--outage 30] [--fuzz 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import faults

ROOT = Path(__file__).resolve().parents[1]


def fuzz(examples: int) -> tuple[int, int, bool]:
    """Run the property tests; returns (inputs generated, properties, all passed)."""
    env = {**os.environ, "SLSA_FUZZ_EXAMPLES": str(examples)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--hypothesis-show-statistics",
                           str(ROOT / "tests" / "unit" / "test_fuzz.py")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600,
                          check=False)
    counts = [int(n) for n in re.findall(r"(\d+) passing, \d+ failing", done.stdout)]
    properties = len(re.findall(r"^tests/unit/test_fuzz.py::\S+:$", done.stdout, flags=re.M))
    return sum(counts), properties, done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=30.0, help="seconds without coordinator")
    parser.add_argument("--fuzz", type=int, default=10_000, help="inputs per property")
    args = parser.parse_args()
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, run in (("sigkill", lambda: faults.sigkill_restart(root / "sigkill")),
                          ("outage", lambda: faults.outage(root / "outage",
                                                           seconds=args.outage)),
                          ("journal-full", lambda: faults.journal_full(root / "full"))):
            start = time.perf_counter()
            outcome = run()
            outcome.details["seconds"] = round(time.perf_counter() - start, 1)
            outcomes.append(outcome)
            print(f"{name:<14} recorded {outcome.recorded:>6}  acknowledged "
                  f"{outcome.acknowledged:>6}  in provenance {outcome.in_provenance:>6}  "
                  f"lost {outcome.lost}  {outcome.details}", flush=True)
    inputs, properties, fuzz_ok = fuzz(args.fuzz)
    survived = sum(1 for o in outcomes if o.lost == 0 and o.in_provenance == o.recorded)
    print()
    print(f"faults survived             {survived} of {len(outcomes)}")
    print(f"inputs fuzzed               {inputs:,} over {properties} properties "
          f"({'no failures' if fuzz_ok else 'FAILURES'}; target >= 10,000)")
    print(f"events recorded             {sum(o.recorded for o in outcomes):,}")
    print(f"events acknowledged         {sum(o.acknowledged for o in outcomes):,}")
    print(f"events in the provenance    {sum(o.in_provenance for o in outcomes):,}")
    lost = sum(o.lost for o in outcomes)
    print(f"events lost                 {lost}   target 0   {'PASS' if lost == 0 else 'MISS'}")
    return 0 if lost == 0 and fuzz_ok and survived == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
