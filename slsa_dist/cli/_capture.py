"""``slsa-dist run`` (one step, captured and signed) and ``slsa-dist tpm enroll``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from slsa_dist.cli._common import EXIT_OK, say
from slsa_dist.sign._formats import FORMATS

if TYPE_CHECKING:
    from slsa_dist.cli._common import Subparsers

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from slsa_dist.integrations._step import run_step
    from slsa_dist.sign._loaders import load_signer

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    result = run_step(command, outputs=args.output, inputs=args.input,
                      input_models=args.input_model, signer=load_signer(args.key),
                      bundle=args.bundle, step_id=args.step_id, step_type=args.step_type,
                      bundle_format=args.format)
    for subject in result.subjects:
        say(f"{subject.digest['sha256']}  {subject.name}")
    say(f"wrote {result.bundle}")
    return EXIT_OK


def _tpm_enroll(args: argparse.Namespace) -> int:
    import socket

    from slsa_dist.attest import _tpm as tpm

    fingerprint, created = tpm.enroll()
    line = f"{fingerprint} {args.name or socket.gethostname()}"
    if args.append is not None:
        with args.append.open("a") as handle:
            handle.write(line + "\n")
    say(line)
    say(f"{'enrolled a new' if created else 'kept the enrolled'} AK at persistent handle "
          f"{tpm.AK_HANDLE:#x}", file=sys.stderr)
    return EXIT_OK


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run one step and sign its provenance")
    run.add_argument("--input", action="append", default=[], type=Path,
                     help="an input dataset (file or directory); repeatable")
    run.add_argument("--input-model", action="append", default=[], type=Path,
                     help="an input model; repeatable")
    run.add_argument("--output", action="append", default=[], type=Path, required=True,
                     help="an output the step produces; repeatable")
    run.add_argument("--key", required=True, type=Path, help="signing key (PEM)")
    run.add_argument("--bundle", required=True, type=Path, help="where to write the bundle")
    run.add_argument("--format", choices=["auto", *FORMATS], default="auto",
                     help="a bundle format (intoto: JSON Lines; sigstore: a Sigstore bundle "
                          "v0.3); auto: the one whose suffix --bundle ends in")
    run.add_argument("--step-id", help="invocation id (default: step-<time>)")
    run.add_argument("--step-type", default="transform",
                     help="what the step does: cleaning, tokenization, quantization, ...")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    run.set_defaults(handler=_run)

    tpm = sub.add_parser("tpm", help="this node's TPM")
    tpm_sub = tpm.add_subparsers(dest="tpm_command", required=True, parser_class=type(tpm))
    enroll = tpm_sub.add_parser("enroll", help="keep one attestation key (AK) in this node's "
                                "TPM and print its fingerprint for --trusted-aks")
    enroll.add_argument("--name", help="the name printed after the fingerprint (default: "
                        "the host name)")
    enroll.add_argument("--append", type=Path, metavar="FILE",
                        help="also append the line to FILE (a trusted AK list)")
    enroll.set_defaults(handler=_tpm_enroll)
