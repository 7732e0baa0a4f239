"""``slsa-dist coordinator`` (serve one job) and ``slsa-dist finalize`` (close it now)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from slsa_dist.cli._common import EXIT_FAILED, EXIT_OK, say
from slsa_dist.errors import InputError
from slsa_dist.model._ledger import LEDGER_ABOVE
from slsa_dist.model._statement import DEFAULT_BUILDER_ID
from slsa_dist.sign._formats import DEFAULT_FORMAT, FORMATS, formats_named

if TYPE_CHECKING:
    from slsa_dist.cli._common import Subparsers

__all__ = ["register"]



# A bundle format by name (slsa_dist.sign.FORMATS), or "both": every one.
FORMAT_CHOICES = (*FORMATS, "both")

def world_size_range(text: str) -> tuple[int, int]:
    """``N`` -> (N, N); ``MIN:MAX`` -> (MIN, MAX), for argparse."""
    low, _, high = text.partition(":")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        pair = (0, 0)
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(
            f"expected N or MIN:MAX with 0 < MIN <= MAX, found {text!r}")
    return pair

def _coordinator(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig
    from slsa_dist.sign._loaders import load_signer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signer = load_signer(args.key)

    async def serve() -> int:
        coordinator = Coordinator(CoordinatorConfig(
            job_id=args.job_id, out_dir=args.out,
            world_size=args.world_size[1], min_world_size=args.world_size[0],
            formats=formats_named(args.format),
            journal_path=args.journal, builder_id=args.builder_id,
            idle_timeout=args.idle_timeout or None, settle=args.settle,
            ledger_above=args.ledger_above), signer=signer)
        if args.tls is None and not args.plaintext:
            raise InputError("coordinator: expected --tls DIR (mutual TLS) or --plaintext "
                             "(loopback only), found neither")
        port = await coordinator.start(args.listen, tls=args.tls)
        host = args.listen.rsplit(":", 1)[0]
        coordinator.internal_parameters["coordinator"] = {
            "address": f"{host}:{port}", "journal": str(coordinator.journal_path),
            "transport": "mutual-tls" if args.tls is not None else "plaintext-loopback"}
        say(f"listening on {host}:{port} (job {args.job_id}, "
              f"{coordinator.replayed} journal entries replayed)")
        if args.port_file:
            args.port_file.write_text(f"{host}:{port}\n")
        try:
            result = await coordinator.wait_finalized()
            # Stragglers get FAILED_PRECONDITION ("finalized") and stop retrying,
            # instead of retrying into a closed port until their flush timeout.
            await asyncio.sleep(args.linger)
        finally:
            # in-flight RPCs get a moment to finish; with no linger, nobody is waiting
            await coordinator.stop(grace=min(2.0, args.linger or 0.2))
        missing = f", missing ranks {list(result.missing_ranks)}" if result.missing_ranks else ""
        say(f"wrote {result.bundle} ({'complete' if result.complete else 'INCOMPLETE'}"
            f"{missing})")
        if not result.outputs_recorded:
            say("warning: no outputs recorded: the subject stands for the run itself")
        return EXIT_OK if result.complete else EXIT_FAILED

    return asyncio.run(serve())


def _finalize(args: argparse.Namespace) -> int:
    from slsa_dist.collect._operator import request_finalize

    done = request_finalize(args.coordinator, args.job_id, tls_dir=args.tls,
                            timeout=args.timeout)
    say(f"{done.bundle} complete={str(done.complete).lower()} "
        f"missing_ranks={list(done.missing_ranks)}")
    return EXIT_OK if done.complete else EXIT_FAILED


def _upload_spool(args: argparse.Namespace) -> int:
    from slsa_dist.collect._upload import upload_spool

    results = upload_spool(args.path, coordinator=args.coordinator, tls_dir=args.tls,
                           timeout=args.timeout)
    for result in results:
        say(f"{result.spool}: {result.events} event(s) "
            f"{'delivered' if result.delivered else 'NOT delivered (still spooled)'}")
    return EXIT_OK if all(r.delivered for r in results) else EXIT_FAILED


def register(sub: Subparsers) -> None:
    coordinator = sub.add_parser("coordinator", help="run a job's coordinator")
    coordinator.add_argument("--job-id", required=True)
    coordinator.add_argument("--listen", required=True, help="host:port (port 0 picks one)")
    coordinator.add_argument("--key", required=True, type=Path, help="signing key (PEM)")
    coordinator.add_argument("--out", required=True, type=Path, help="where bundles go")
    coordinator.add_argument("--world-size", type=world_size_range, required=True,
                             metavar="N|MIN:MAX",
                             help="ranks in the job, as the launcher sees it (never taken "
                                  "from a rank); MIN:MAX for an elastic job (torchrun "
                                  "--nnodes MIN:MAX times --nproc-per-node): each attempt's "
                                  "world size lies in it, and the job is judged by its final "
                                  "attempt")
    coordinator.add_argument("--journal", type=Path,
                             help="journal path (default OUT/JOB.journal.sqlite)")
    coordinator.add_argument("--builder-id", default=DEFAULT_BUILDER_ID)
    coordinator.add_argument("--format", choices=FORMAT_CHOICES, default=DEFAULT_FORMAT,
                             help="intoto: <job>.intoto.jsonl (default); sigstore: a Sigstore "
                                  "bundle v0.3, <job>.sigstore.json; both: the two, the same "
                                  "signed envelope in each")
    coordinator.add_argument("--ledger-above", type=int, default=LEDGER_ABOVE, metavar="RANKS",
                             help="above this many ranks, per-rank, per-node and "
                                  "per-checkpoint records go to OUT/JOB.ledger.jsonl, bound "
                                  "to the statement by digest and Merkle root (default "
                                  f"{LEDGER_ABOVE}; 0: always)")
    coordinator.add_argument("--idle-timeout", type=float, default=1800.0,
                             help="finalize after this many seconds without a message "
                                  "(default 1800: a job that died unseen still ends; 0 waits "
                                  "forever)")
    coordinator.add_argument("--settle", type=float, default=30.0,
                             help="after all ranks completed, seconds to wait for node agents' "
                                  "final reports (default 30)")
    coordinator.add_argument("--linger", type=float, default=5.0,
                             help="after finalizing, seconds to keep answering stragglers "
                                  "that the job is closed (default 5)")
    coordinator.add_argument("--port-file", type=Path, help="write host:port here once bound")
    transport = coordinator.add_mutually_exclusive_group()
    transport.add_argument("--tls", type=Path, metavar="DIR",
                           help="mutual TLS: cert.pem, key.pem, ca.pem from "
                                "`slsa-dist ca issue --role coordinator`")
    transport.add_argument("--plaintext", action="store_true",
                           help="no TLS; allowed on loopback only")
    coordinator.set_defaults(handler=_coordinator)

    finalize = sub.add_parser("finalize", help="ask a coordinator to finalize now")
    finalize.add_argument("--coordinator", required=True, help="host:port")
    finalize.add_argument("--job-id", required=True)
    finalize.add_argument("--timeout", type=float, default=60.0)
    finalize.add_argument("--tls", type=Path, metavar="DIR",
                          help="an admin certificate directory (mutual TLS)")
    finalize.set_defaults(handler=_finalize)

    upload = sub.add_parser("upload-spool", help="deliver events agents left in a spool")
    upload.add_argument("path", type=Path, help="a job's spool folder (or one .spool file)")
    upload.add_argument("--coordinator", help="host:port (default: the one each spool names)")
    upload.add_argument("--tls", metavar="DIR", help="a certificate directory (mutual TLS)")
    upload.add_argument("--timeout", type=float, default=60.0)
    upload.set_defaults(handler=_upload_spool)
