"""The ``slsa-dist`` command: one module per stage, each subcommand's parser next
to its handler (ADR 0007).

======================  ==========================================
``capture``             ``run``, ``tpm enroll``
``collect``             ``coordinator``, ``finalize``
``sign``                ``keygen``, ``ca``, ``digest``, ``oms``
``verify``              ``verify``, ``verify chain``; ``store``
``report``              ``report``, ``inspect``
======================  ==========================================

Exit codes: 0 success, 1 verification failed, 2 usage or input error.
Errors are one line naming what was expected and what was found; a
traceback means a bug in slsa-dist.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from slsa_dist import __version__
from slsa_dist.cli import _capture as capture
from slsa_dist.cli import _collect as collect
from slsa_dist.cli import _report as report
from slsa_dist.cli import _sign as sign
from slsa_dist.cli import _store as store
from slsa_dist.cli import _verify as verify
from slsa_dist.cli._common import EXIT_FAILED, EXIT_USAGE, Handler, Parser, say
from slsa_dist.errors import Error, InputError, VerificationError

__all__ = ["main"]

_COMMANDS = (sign, verify, store, report, collect, capture)


def build_parser() -> Parser:
    parser = Parser(prog="slsa-dist",
                    description="One signed SLSA provenance for a whole distributed training "
                                "job.")
    parser.add_argument("--version", action="version", version=f"slsa-dist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def _spell(argv: Sequence[str]) -> list[str]:
    """``verify chain ...`` is one verb of two words (the parser's ``verify-chain``)."""
    args = list(argv)
    if args[:2] == ["verify", "chain"]:
        return ["verify-chain", *args[2:]]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_spell(sys.argv[1:] if argv is None else argv))
    handler: Handler = args.handler
    try:
        return handler(args)
    except InputError as exc:
        say(f"slsa-dist: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationError as exc:
        say(f"slsa-dist: verification failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Error as exc:
        say(f"slsa-dist: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
