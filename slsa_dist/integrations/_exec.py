"""Run a training script under slsa-dist without editing it.

    torchrun ... -m slsa_dist.exec train.py ARGS...
    slsa-torchrun ... -m slsa_dist.exec -m package.module ARGS...

Starts the rank agent (``slsa_dist.init()``) with zero-code capture of the
files the script reads and saves (:mod:`slsa_dist.capture._auto`), runs the
script as ``__main__``, and reports the rank's exit code and state when it
ends, however it ends (return, ``sys.exit``, or an exception).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

from slsa_dist.capture._auto import install
from slsa_dist.capture._runtime import capture_gap
from slsa_dist.integrations._contract import init

__all__ = ["main"]


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


class _Terminated(BaseException):
    """SIGTERM (torchrun stopping a worker group): unwinds the script so the rank
    can report how it ended before it exits."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    del frame
    raise _Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m slsa_dist.exec SCRIPT [ARGS...] | -m MODULE [ARGS...]",
              file=sys.stderr)
        return 2
    module = args[0] == "-m"
    if module:
        args = args[1:]
    runtime = init(argv=args, script=None if module else args[0], finish_at_exit=False)
    try:
        install(runtime, script=None if module else args[0])  # what it reads, saves, imports
    except Exception as exc:  # run the script unrecorded, and say so
        capture_gap("zero-code capture", exc)
    sys.argv = list(args)
    signal.signal(signal.SIGTERM, _on_sigterm)
    code, state = 0, "SUCCEEDED"
    try:
        if module:
            runpy.run_module(args[0], run_name="__main__", alter_sys=True)
        else:
            # as `python SCRIPT` does: the script's directory first on the path, so an
            # unchanged script imports the modules beside it
            sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exc:
        code = _exit_code(exc.code)
        state = "SUCCEEDED" if code == 0 else "FAILED"
    except _Terminated:
        code, state = 128 + signal.SIGTERM, "TERMINATED"
    except BaseException:
        traceback.print_exc()
        code, state = 1, "FAILED"
    runtime.finish(exit_code=code, state=state)
    return code


if __name__ == "__main__":
    sys.exit(main())
