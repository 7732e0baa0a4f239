"""What every ``slsa-dist`` subcommand shares: exit codes, the parser class, progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Handler", "Parser", "deprecated", "progress",
           "say"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit is 2 already; keep one line
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[Parser]  # noqa: SLF001 -- argparse has no public name


def say(text: str, *, file: TextIO | None = None) -> None:
    """Print one line; control characters a tenant put in names, hosts or details are
    shown escaped (``\\x1b``), never acted on by the terminal."""
    from slsa_dist.report._text import printable

    print(printable(text), file=file or sys.stdout, flush=True)


def deprecated(message: str) -> None:
    """One line on stderr: the command still works, and says what replaces it."""
    print(f"slsa-dist: deprecated: {message}", file=sys.stderr)


def progress(stream: TextIO) -> Callable[[int, int], None] | None:
    if not stream.isatty():
        return None
    last = [-1]

    def show(done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        if percent != last[0]:
            last[0] = percent
            bar = "#" * (percent // 4)
            stream.write(f"\r[{bar:<25}] {percent:3d}% {done / 2**20:,.0f} MiB")
            if done >= total:
                stream.write("\n")
            stream.flush()

    return show
