"""``slsa-dist keygen``, ``ca``, ``digest`` and ``oms``: keys, the job CA, manifests, OMS."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING

from slsa_dist.cli._common import EXIT_OK, progress, say
from slsa_dist.model._digests import ALGORITHMS
from slsa_dist.sign._ca import ROLES
from slsa_dist.sign._keys import Algorithm

if TYPE_CHECKING:
    from slsa_dist.cli._common import Subparsers

__all__ = ["register"]


def _keygen(args: argparse.Namespace) -> int:
    from slsa_dist.sign._keys import keygen

    private, public = keygen(args.out, algorithm=args.algorithm, name=args.name)
    say(f"private key: {private} (mode 0600)")
    say(f"public key:  {public}")
    return EXIT_OK


def _ca(args: argparse.Namespace) -> int:
    from slsa_dist.sign._ca import Identity, JobCA

    if args.ca_command == "init":
        ca = JobCA.create(args.job_id, days=args.days)
        say(f"wrote {ca.write(args.out)}/ca.pem and ca.key (0600)")
        return EXIT_OK
    ca = JobCA.load(args.ca)
    identity = Identity(job=ca.job, role=args.role, name=args.name or "")
    issued = ca.issue(identity, hosts=tuple(args.host), days=args.days)
    say(f"wrote {issued.write(args.out)}: {identity.uri()}")
    return EXIT_OK


def _digest(args: argparse.Namespace) -> int:
    from slsa_dist.digest._cache import DigestCache
    from slsa_dist.digest._manifest import DEFAULT_SHARD_SIZE, digest_path

    cache = None if args.no_cache else DigestCache(path=args.cache)
    try:
        manifest = digest_path(
            args.path,
            algorithm=args.algorithm,
            method="shards" if args.shard_size else "files",
            shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
            allow_symlinks=args.allow_symlinks,
            cache=cache,
            progress=progress(sys.stderr),
            use_mmap=args.mmap,
        )
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
        return EXIT_OK
    for resource in manifest.resources:
        say(f"{resource.digest}  {resource.name}")
    say(f"{manifest.root_digest}  (root, sha256 over {len(manifest.resources)} "
          f"{manifest.algorithm} digest(s), {manifest.method})")
    return EXIT_OK


def _oms(args: argparse.Namespace) -> int:
    from slsa_dist.errors import InputError
    from slsa_dist.sign import _oms as oms
    from slsa_dist.sign._loaders import load_signer, load_verifier

    if args.oms_command == "sign":
        path = oms.sign_model(args.model, signer=load_signer(args.key), signature=args.signature)
        say(f"wrote {path}")
        return EXIT_OK
    if args.key is None and args.root is None:
        raise InputError("oms verify: expected --key PUB (key-based signature) or --root "
                         "ROOTS.pem (certificate-based), found neither")
    manifest = oms.verify_model(args.model, signature=args.signature,
                                key=load_verifier(args.key) if args.key else None,
                                roots=args.root)
    say(f"verified {args.model}: {len(manifest.resources)} resource(s), "
          f"root sha256 {manifest.root_digest}")
    return EXIT_OK


def register(sub: Subparsers) -> None:
    keygen = sub.add_parser("keygen", help="create a signing key pair")
    keygen.add_argument("--out", required=True, type=Path, help="directory for the key files")
    keygen.add_argument("--algorithm", choices=typing.get_args(Algorithm), default="ecdsa-p256")
    keygen.add_argument("--name", default="signing", help="file stem (default: signing)")
    keygen.set_defaults(handler=_keygen)

    ca = sub.add_parser("ca", help="job CA and per-identity certificates (mutual TLS)")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, parser_class=type(ca))
    ca_init = ca_sub.add_parser("init", help="create a job CA")
    ca_init.add_argument("--job-id", required=True)
    ca_init.add_argument("--out", required=True, type=Path)
    ca_init.add_argument("--days", type=int, default=30)
    ca_init.set_defaults(handler=_ca)
    ca_issue = ca_sub.add_parser("issue", help="issue a certificate for one identity")
    ca_issue.add_argument("--ca", required=True, type=Path, help="directory from `ca init`")
    ca_issue.add_argument("--role", required=True, choices=ROLES)
    ca_issue.add_argument("--name", help="node id or rank number")
    ca_issue.add_argument("--host", action="append", default=[],
                          help="DNS name or IP the coordinator is reached at; repeatable")
    ca_issue.add_argument("--out", required=True, type=Path)
    ca_issue.add_argument("--days", type=int, default=30)
    ca_issue.set_defaults(handler=_ca)

    digest = sub.add_parser("digest", help="hash a file or directory (OMS manifest)")
    digest.add_argument("path", type=Path)
    digest.add_argument("--algorithm", choices=ALGORITHMS, default="sha256")
    digest.add_argument("--shard-size", type=int, default=0,
                        help="hash byte ranges of this size (OMS 'shards'); 0 = whole files")
    digest.add_argument("--allow-symlinks", action="store_true",
                        help="follow symlinks that stay inside PATH")
    digest.add_argument("--no-cache", action="store_true", help="do not use the digest cache")
    digest.add_argument("--mmap", action="store_true",
                        help="hash from the page cache without copying (~10%% faster); only "
                             "for files nothing else modifies: a file truncated while mapped "
                             "ends the process with SIGBUS")
    digest.add_argument("--cache", type=Path, help="digest cache file (default: ~/.cache/...)")
    digest.add_argument("--json", action="store_true", help="one JSON document")
    digest.set_defaults(handler=_digest)

    oms_parser = sub.add_parser("oms", help="OpenSSF Model Signing signature files")
    oms_sub = oms_parser.add_subparsers(dest="oms_command", required=True,
                                        parser_class=type(oms_parser))
    for name, key_help in (("sign", "ECDSA P-256 or P-384 private key (PEM)"),
                           ("verify", "public key (PEM), for a key-based signature")):
        command = oms_sub.add_parser(name, help=f"{name} an OMS signature file")
        command.add_argument("model", type=Path)
        command.add_argument("--key", required=name == "sign", type=Path, help=key_help)
        if name == "verify":
            command.add_argument("--root", type=Path, metavar="ROOTS.pem",
                                 help="trusted root certificates, for a signature made with a "
                                      "certificate chain (model_signing sign certificate)")
        command.add_argument("--signature", required=True, type=Path, help="e.g. model.sig")
        command.set_defaults(handler=_oms)
