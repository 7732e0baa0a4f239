"""``slsa-dist store add|find``: the attestation store a chain is followed through;
``slsa-dist push``: a model into an OCI registry, its bundles attached as referrers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from slsa_dist.cli._common import EXIT_FAILED, EXIT_OK, say

if TYPE_CHECKING:
    from slsa_dist.cli._common import Subparsers

__all__ = ["register"]


def _store(args: argparse.Namespace) -> int:
    from slsa_dist.sign._loaders import load_verifier
    from slsa_dist.verify._store import Store

    store = Store(args.store)
    if args.store_command == "add":
        keys = [load_verifier(path) for path in args.key]
        for bundle in args.bundles:
            warnings: list[str] = []
            name, digests = store.add(bundle, keys=keys, warnings=warnings)
            say(f"{bundle} -> {name} ({len(digests)} digest(s) indexed)")
            for warning in warnings:
                say(f"warning: {warning}", file=sys.stderr)
        return EXIT_OK
    found = store.find(args.digest)
    for path in found:
        say(str(path))
    return EXIT_OK if found else EXIT_FAILED


def register(sub: Subparsers) -> None:
    store = sub.add_parser("store", help="an attestation store indexed by subject digest")
    store_sub = store.add_subparsers(dest="store_command", required=True,
                                     parser_class=type(store))
    store_add = store_sub.add_parser("add", help="add bundles and index what their envelopes "
                                     "signed by --key produced")
    store_add.add_argument("bundles", nargs="+", type=Path)
    store_add.add_argument("--store", required=True, type=Path)
    store_add.add_argument("--key", action="append", required=True, type=Path,
                           help="public key (PEM) whose envelopes are indexed; repeatable")
    store_add.set_defaults(handler=_store)
    store_find = store_sub.add_parser("find", help="bundles that produced a sha256 digest")
    store_find.add_argument("digest")
    store_find.add_argument("--store", required=True, type=Path)
    store_find.set_defaults(handler=_store)

    push = sub.add_parser("push", help="upload a model to an OCI registry and attach its "
                          "signed bundles as referrers")
    push.add_argument("model", type=Path, help="a model directory (or DCP checkpoint) or file")
    push.add_argument("target", help="oci://REGISTRY/REPO[:TAG]")
    push.add_argument("--attach", action="append", default=[], type=Path, metavar="BUNDLE",
                      help="a .sigstore.json or .intoto.jsonl bundle (provenance, VSA); "
                           "repeatable")
    push.set_defaults(handler=_push)


def _push(args: argparse.Namespace) -> int:
    from slsa_dist.verify import _oci as oci

    warnings: list[str] = []
    digest = oci.push(args.model, args.target, attachments=args.attach, warnings=warnings)
    reference = oci.parse(args.target)
    say(f"pushed {args.model} to {reference.name} ({len(args.attach)} bundle(s) attached)")
    for warning in warnings:
        say(f"warning: {warning}", file=sys.stderr)
    say(f"oci://{reference.registry}/{reference.repository}@{digest}")
    return EXIT_OK
