"""The demo's training script with one rank failing on the first attempt.

The failure comes before any rank touches gloo (gloo can hang or race when a
peer dies mid-rendezvous): rank ``SLSA_TEST_FAIL_RANK`` exits 3 on attempt 0
and the others wait for torchrun to stop them; later attempts train normally.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "demo" / "train.py"

if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
    fail_rank = os.environ["SLSA_TEST_FAIL_RANK"]
    if os.environ.get("RANK") == fail_rank:
        print(f"rank {fail_rank}: injected failure on attempt 0", flush=True)
        sys.exit(3)
    time.sleep(120)  # torchrun terminates this worker when the failing rank exits
sys.argv[0] = str(TRAIN)
runpy.run_path(str(TRAIN), run_name="__main__")
