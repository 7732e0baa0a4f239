"""``slsa-dist report`` (one HTML page) and ``slsa-dist inspect`` (a terminal summary)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from slsa_dist.cli._common import EXIT_OK, say
from slsa_dist.cli._verify import add_chain_arguments, walk_chain

if TYPE_CHECKING:
    from slsa_dist.cli._common import Subparsers

__all__ = ["register"]


def _report(args: argparse.Namespace) -> int:
    from slsa_dist.report._html import write_report
    from slsa_dist.sign._loaders import load_verifier

    lines: list[str] = []
    if args.chain is not None:
        result, _ = walk_chain(args, "report --chain")
        lines = [*result.lines(), f"chain {'verified' if result.ok else 'NOT verified'}"]
    path = write_report(args.output, args.bundles, keys=[load_verifier(k) for k in args.key],
                        chain_lines=lines)
    say(f"wrote {path}")
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from slsa_dist.report._text import summarize_bundle

    print(summarize_bundle(args.bundle, key_paths=args.key))
    return EXIT_OK


def register(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="one self-contained HTML report")
    report.add_argument("bundles", nargs="+", type=Path)
    report.add_argument("-o", "--output", required=True, type=Path)
    report.add_argument("--key", action="append", default=[], type=Path,
                        help="verify each bundle with this public key too")
    report.add_argument("--chain", metavar="ARTIFACT",
                        help="include chain verification of this artifact")
    add_chain_arguments(report)
    report.set_defaults(handler=_report)

    inspect = sub.add_parser("inspect", help="summarize a provenance bundle")
    inspect.add_argument("bundle", type=Path)
    inspect.add_argument("--key", action="append", default=[], type=Path,
                         help="check the signature with this public key too")
    inspect.set_defaults(handler=_inspect)
