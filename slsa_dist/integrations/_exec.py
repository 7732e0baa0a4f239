"""Run a training script under slsa-dist without editing it.

    torchrun ... -m slsa_dist.exec train.py ARGS...
    slsa-torchrun ... -m slsa_dist.exec -m package.module ARGS...

Starts the rank agent (``slsa_dist.init()``) with zero-code capture of the
files the script reads and saves (:mod:`slsa_dist.capture._auto`), runs the
script as ``__main__``, and reports the rank's exit code and state when it
ends, however it ends, as the launcher will see it: return (0), ``sys.exit(n)``
(``n``), an uncaught exception (1), or SIGTERM from the launcher (-15, TERMINATED:
the wrapper reports it, then dies by the signal as the script would have). A
SIGKILL (the OOM killer's) leaves no word from the rank: its launcher records it.
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
    """The status ``sys.exit(code)`` gives the process, as Python exits: None is 0, an
    int its low byte (what the launcher sees), anything else is printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


class _Terminated(BaseException):
    """SIGTERM (torchrun stopping a worker group): unwinds the script so the rank
    can report how it ended before it exits."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    del frame
    raise _Terminated(signum)


def _deferred(signum: int, frame: FrameType | None) -> None:
    """SIGTERM once the script ended: the rank is reporting how it ended and flushing
    (bounded by ``SLSA_FLUSH_TIMEOUT``); it exits with the script's own code after."""
    del signum, frame


def _run(args: list[str], module: bool) -> tuple[int, str, int | None]:
    """Run the script: its exit code, state, and the signal it should die by."""
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
        return code, "SUCCEEDED" if code == 0 else "FAILED", None
    except _Terminated:
        # recorded as the launcher sees a process a signal ended: minus the signal
        return -signal.SIGTERM, "TERMINATED", signal.SIGTERM
    except KeyboardInterrupt:  # Python itself dies by SIGINT then
        traceback.print_exc()
        return -signal.SIGINT, "TERMINATED", signal.SIGINT
    except BaseException:
        traceback.print_exc()
        return 1, "FAILED", None
    return 0, "SUCCEEDED", None


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
    code, state, die_by = _run(args, module)
    # The script ended: a SIGTERM now (torchrun stopping the group because another rank
    # failed) must not cut the report of how this one ended.
    signal.signal(signal.SIGTERM, _deferred)
    runtime.finish(exit_code=code, state=state)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if die_by is not None:  # end as the script would have without the wrapper
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(die_by, signal.SIG_DFL)
        os.kill(os.getpid(), die_by)
        return 128 + die_by  # as a shell says it, should the signal not end us first
    return code


if __name__ == "__main__":
    sys.exit(main())
