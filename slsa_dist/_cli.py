"""The ``slsa-dist`` command.

Exit codes: 0 success, 1 verification failed, 2 usage or input error.
Errors are one line naming what was expected and what was found; a
traceback means a bug in slsa-dist.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from slsa_dist import __version__
from slsa_dist.errors import Error, InputError, VerificationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit is 2 already; keep one line
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _progress(stream: TextIO) -> Callable[[int, int], None] | None:
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


def _cmd_keygen(args: argparse.Namespace) -> int:
    from slsa_dist.keys import keygen

    private, public = keygen(args.out, algorithm=args.algorithm, name=args.name)
    print(f"private key: {private} (mode 0600)")
    print(f"public key:  {public}")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from slsa_dist.keys import load_verifier
    from slsa_dist.verify import check_bundle

    keys = [load_verifier(path) for path in args.key]
    checks, provenance = check_bundle(
        args.bundle, keys=keys, artifacts=args.artifact, builder_id=args.builder_id
    )
    verified = provenance is not None and all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"verified": verified, "bundle": str(args.bundle),
                          "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        print("verified" if verified else "NOT verified")
    return EXIT_OK if verified else EXIT_FAILED


def _cmd_inspect(args: argparse.Namespace) -> int:
    from slsa_dist._internal.summary import summarize_bundle

    print(summarize_bundle(args.bundle, key_paths=args.key))
    return EXIT_OK


def _cmd_digest(args: argparse.Namespace) -> int:
    from slsa_dist._internal.digest_cache import DigestCache
    from slsa_dist.digest import DEFAULT_SHARD_SIZE, digest_path

    cache = None if args.no_cache else DigestCache(path=args.cache)
    try:
        manifest = digest_path(
            args.path,
            algorithm=args.algorithm,
            method="shards" if args.shard_size else "files",
            shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
            allow_symlinks=args.allow_symlinks,
            cache=cache,
            progress=_progress(sys.stderr),
        )
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
        return EXIT_OK
    for resource in manifest.resources:
        print(f"{resource.digest}  {resource.name}")
    print(f"{manifest.root_digest}  (root, sha256 over {len(manifest.resources)} "
          f"{manifest.algorithm} digest(s), {manifest.method})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slsa-dist", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"slsa-dist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keygen = sub.add_parser("keygen", help="create a signing key pair")
    keygen.add_argument("--out", required=True, type=Path, help="directory for the key files")
    keygen.add_argument("--algorithm", choices=["ecdsa-p256", "ed25519"], default="ecdsa-p256")
    keygen.add_argument("--name", default="signing", help="file stem (default: signing)")
    keygen.set_defaults(handler=_cmd_keygen)

    verify = sub.add_parser("verify", help="verify a provenance bundle")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--key", required=True, action="append", type=Path,
                        help="trusted public key (PEM); repeatable")
    verify.add_argument("--artifact", action="append", default=[], type=Path,
                        help="file or directory that must match a subject; repeatable")
    verify.add_argument("--builder-id", help="the builder.id to require")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=_cmd_verify)

    inspect = sub.add_parser("inspect", help="summarize a provenance bundle")
    inspect.add_argument("bundle", type=Path)
    inspect.add_argument("--key", action="append", default=[], type=Path,
                         help="check the signature with this public key too")
    inspect.set_defaults(handler=_cmd_inspect)

    digest = sub.add_parser("digest", help="hash a file or directory (OMS manifest)")
    digest.add_argument("path", type=Path)
    digest.add_argument("--algorithm", choices=["sha256", "blake3", "sha512"], default="sha256")
    digest.add_argument("--shard-size", type=int, default=0,
                        help="hash byte ranges of this size (OMS 'shards'); 0 = whole files")
    digest.add_argument("--allow-symlinks", action="store_true",
                        help="follow symlinks that stay inside PATH")
    digest.add_argument("--no-cache", action="store_true", help="do not use the digest cache")
    digest.add_argument("--cache", type=Path, help="digest cache file (default: ~/.cache/...)")
    digest.add_argument("--json", action="store_true", help="one JSON document")
    digest.set_defaults(handler=_cmd_digest)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except InputError as exc:
        print(f"slsa-dist: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationError as exc:
        print(f"slsa-dist: verification failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Error as exc:
        print(f"slsa-dist: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
