"""A script that ends on each rank as ``SLSA_TEST_EXIT`` says, before any collective
(gloo can hang when a peer dies after one), for the exit-state tests.

``SLSA_TEST_EXIT`` is ``MODE`` (every rank) or ``MODE@RANK`` (only that rank; the
others wait for torchrun to stop them): ``exit3`` (``sys.exit(3)``), ``raise`` (an
uncaught exception), ``sigkill`` (the rank kills itself with SIGKILL, as the
kernel's OOM killer does). The ranks first wait for each other in the folder
``SLSA_TEST_BARRIER``, so each is running the script (its agent started) before
any ends.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

mode, _, only = os.environ["SLSA_TEST_EXIT"].partition("@")
rank = os.environ.get("RANK", "0")
barrier = Path(os.environ["SLSA_TEST_BARRIER"])
(barrier / rank).touch()
deadline = time.monotonic() + 60
while len(list(barrier.iterdir())) < int(os.environ.get("WORLD_SIZE", "1")):
    if time.monotonic() > deadline:
        sys.exit("barrier: the other ranks never came")
    time.sleep(0.01)
if only and rank != only:
    time.sleep(120)  # torchrun terminates this worker when the failing rank exits
    sys.exit(0)
print(f"rank {rank}: ending with {mode}", flush=True)
if mode == "exit3":
    sys.exit(3)
if mode == "raise":
    raise RuntimeError(f"rank {rank}: injected failure")
if mode == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
sys.exit(f"unknown SLSA_TEST_EXIT mode {mode!r}")
