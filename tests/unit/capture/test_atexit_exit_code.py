"""#27 item 5: what ``slsa_dist.init``'s atexit hook reports for how the process ends.

At exit the interpreter keeps a SystemExit's code to itself: a rank that called
``sys.exit(3)`` reported exit 0 SUCCEEDED.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(60)]

PROLOGUE = """
import atexit, sys, threading
from slsa_dist.integrations import _contract
_contract._watch_sys_exit()
atexit.register(lambda: print("state", *_contract._exit_state(), file=sys.stderr))
"""


@pytest.mark.parametrize(("body", "expected", "returncode"), [
    ("pass", "state 0 SUCCEEDED", 0),
    ("sys.exit(3)", "state 3 FAILED", 3),
    ("sys.exit()", "state 0 SUCCEEDED", 0),
    ("sys.exit('no data')", "state 1 FAILED", 1),
    ("sys.exit(256 + 7)", "state 7 FAILED", 7),
    ("raise RuntimeError('boom')", "state 1 FAILED", 1),
    ("raise KeyboardInterrupt", "state -2 TERMINATED", -2),
    # a thread's sys.exit ends the thread only
    ("t = threading.Thread(target=sys.exit, args=(5,)); t.start(); t.join()",
     "state 0 SUCCEEDED", 0),
    # caught: the process goes on, then exits as it says
    ("try:\n    sys.exit(4)\nexcept SystemExit:\n    pass\nsys.exit(0)", "state 0 SUCCEEDED", 0),
])
def test_the_atexit_hook_reports_the_real_exit(body: str, expected: str,
                                               returncode: int) -> None:
    done = subprocess.run([sys.executable, "-c", PROLOGUE + body], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == returncode, done.stderr
    assert expected in done.stderr.splitlines(), done.stderr
