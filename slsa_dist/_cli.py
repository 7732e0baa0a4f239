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
from typing import TYPE_CHECKING, Any, TextIO

from slsa_dist import __version__
from slsa_dist.errors import Error, InputError, VerificationError
from slsa_dist.provenance import DEFAULT_BUILDER_ID

if TYPE_CHECKING:
    from slsa_dist.chain import ChainPolicy, ChainResult

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

    if args.chain is not None:
        return _verify_chain(args)
    if args.bundle is None or not args.key:
        raise InputError("verify: expected BUNDLE and --key (or --chain ARTIFACT --store DIR "
                         "--policy FILE), found neither")
    trusted_aks = None
    if args.trusted_aks is not None:
        from slsa_dist.attest.tpm import load_trusted_aks

        if args.require_attestation != "tpm":
            raise InputError("--trusted-aks: expected it with --require-attestation tpm, found "
                             f"{args.require_attestation or 'no attestation requirement'}")
        trusted_aks = load_trusted_aks(args.trusted_aks)
    keys = [load_verifier(path) for path in args.key]
    checks, provenance = check_bundle(
        args.bundle, keys=keys, artifacts=args.artifact, builder_id=args.builder_id
    )
    if args.require_attestation and provenance is not None:
        from slsa_dist.attest.policy import require_attestation

        checks.append(require_attestation(provenance, args.require_attestation,
                                          trusted_aks=trusted_aks))
    verified = bool(checks) and all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"verified": verified, "bundle": str(args.bundle),
                          "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        print("verified" if verified else "NOT verified")
    return EXIT_OK if verified else EXIT_FAILED


def _walk_chain(args: argparse.Namespace, command: str) -> tuple[ChainResult, ChainPolicy]:
    """``--chain ARTIFACT --store DIR --policy FILE``, shared by verify and report."""
    from slsa_dist.chain import ChainPolicy, artifact_digest, verify_chain
    from slsa_dist.store import Store

    if args.store is None or args.policy is None:
        raise InputError(f"{command} --chain: expected --store DIR and --policy FILE, found "
                         f"{'no --store' if args.store is None else 'no --policy'}")
    policy = ChainPolicy.load(args.policy)
    artifact = Path(args.chain)
    if artifact.exists():
        root, name = artifact_digest(artifact), artifact.name
    elif len(args.chain) == 64 and not args.chain.strip("0123456789abcdef"):
        root, name = args.chain, f"sha256:{args.chain[:16]}"
    else:
        raise InputError(f"--chain: expected an artifact path or a sha256 digest, "
                         f"found {args.chain!r}")
    return verify_chain(root, name=name, store=Store(args.store), policy=policy), policy


def _verify_chain(args: argparse.Namespace) -> int:
    from slsa_dist.dsse import write_bundle
    from slsa_dist.keys import load_signer

    result, policy = _walk_chain(args, "verify")
    artifact = Path(args.chain)
    if args.json:
        print(json.dumps({"verified": result.ok, "root": result.root,
                          "graph": list(result.lines()),
                          "gaps": [g.__dict__ for g in result.gaps],
                          "steps": [s.name for s in result.unique_steps()]}, indent=2))
    else:
        for line in result.lines():
            print(line)
        print(f"chain {'verified' if result.ok else 'NOT verified'}: "
              f"{len(result.unique_steps())} step(s), {len(result.gaps)} gap(s)")
    if args.emit_vsa is not None:
        if args.vsa_key is None:
            raise InputError("--emit-vsa: expected --vsa-key KEY to sign it, found none")
        from slsa_dist.vsa import summarize

        envelope = summarize(result, policy=policy, signer=load_signer(args.vsa_key),
                             resource_uri=args.resource_uri or artifact.resolve().as_uri())
        print(f"wrote {write_bundle(args.emit_vsa, [envelope])}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _cmd_store(args: argparse.Namespace) -> int:
    from slsa_dist.store import Store

    store = Store(args.store)
    if args.store_command == "add":
        for bundle in args.bundles:
            name, digests = store.add(bundle)
            print(f"{bundle} -> {name} ({len(digests)} digest(s) indexed)")
        return EXIT_OK
    found = store.find(args.digest)
    for path in found:
        print(path)
    return EXIT_OK if found else EXIT_FAILED


def _cmd_report(args: argparse.Namespace) -> int:
    from slsa_dist.keys import load_verifier
    from slsa_dist.report import write_report

    lines: list[str] = []
    if args.chain is not None:
        result, _ = _walk_chain(args, "report")
        lines = [*result.lines(), f"chain {'verified' if result.ok else 'NOT verified'}"]
    path = write_report(args.output, args.bundles, keys=[load_verifier(k) for k in args.key],
                        chain_lines=lines)
    print(f"wrote {path}")
    return EXIT_OK


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
            use_mmap=args.mmap,
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


def _cmd_coordinator(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from slsa_dist.coordinator import Coordinator
    from slsa_dist.keys import load_signer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signer = load_signer(args.key)

    async def serve() -> int:
        coordinator = Coordinator(
            job_id=args.job_id, signer=signer, out_dir=args.out, world_size=args.world_size,
            journal_path=args.journal, builder_id=args.builder_id,
            idle_timeout=args.idle_timeout, settle=args.settle)
        if args.tls is None and not args.plaintext:
            raise InputError("coordinator: expected --tls DIR (mutual TLS) or --plaintext "
                             "(loopback only), found neither")
        port = await coordinator.start(args.listen, tls=args.tls)
        host = args.listen.rsplit(":", 1)[0]
        print(f"listening on {host}:{port} (job {args.job_id}, "
              f"{coordinator.replayed} journal entries replayed)", flush=True)
        if args.port_file:
            args.port_file.write_text(f"{host}:{port}\n")
        try:
            result = await coordinator.wait_finalized()
            # Stragglers get FAILED_PRECONDITION ("finalized") and stop retrying,
            # instead of retrying into a closed port until their flush timeout.
            await asyncio.sleep(args.linger)
        finally:
            await coordinator.stop(grace=2.0)
        missing = f", missing ranks {list(result.missing_ranks)}" if result.missing_ranks else ""
        print(f"wrote {result.bundle} ({'complete' if result.complete else 'INCOMPLETE'}"
              f"{missing})", flush=True)
        return EXIT_OK

    return asyncio.run(serve())


def _cmd_ca(args: argparse.Namespace) -> int:
    from slsa_dist.ca import Identity, JobCA

    if args.ca_command == "init":
        ca = JobCA.create(args.job_id, days=args.days)
        print(f"wrote {ca.write(args.out)}/ca.pem and ca.key (0600)")
        return EXIT_OK
    ca = JobCA.load(args.ca)
    identity = Identity(job=ca.job, role=args.role, name=args.name or "")
    issued = ca.issue(identity, hosts=tuple(args.host), days=args.days)
    print(f"wrote {issued.write(args.out)}: {identity.uri()}")
    return EXIT_OK


def _cmd_finalize(args: argparse.Namespace) -> int:
    import grpc

    from slsa_dist._pb.v1 import collector_pb2 as pb
    from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
    from slsa_dist.coordinator import is_loopback
    from slsa_dist.errors import TransportError

    if args.tls is not None:
        from slsa_dist.ca import channel_credentials

        channel = grpc.secure_channel(args.coordinator, channel_credentials(args.tls))
    elif is_loopback(args.coordinator):
        channel = grpc.insecure_channel(args.coordinator)
    else:
        raise InputError(f"coordinator: plaintext is allowed on loopback only; expected "
                         f"127.0.0.1/::1/localhost or --tls, found {args.coordinator!r}")
    with channel:
        stub = pb_grpc.CollectorStub(channel)
        try:
            reply = stub.Finalize(pb.FinalizeRequest(job_id=args.job_id, reason="request"),
                                  timeout=args.timeout)
        except grpc.RpcError as exc:
            raise TransportError(f"finalize: {exc.code().name}: {exc.details()}") from None
    print(f"{reply.bundle_path} complete={str(reply.complete).lower()} "
          f"missing_ranks={list(reply.missing_ranks)}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from slsa_dist.keys import load_signer
    from slsa_dist.run import run_step

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    result = run_step(command, outputs=args.output, inputs=args.input,
                      input_models=args.input_model, signer=load_signer(args.key),
                      bundle=args.bundle, step_id=args.step_id, step_type=args.step_type)
    for subject in result.subjects:
        print(f"{subject.digest['sha256']}  {subject.name}")
    print(f"wrote {result.bundle}")
    return EXIT_OK


def _cmd_oms(args: argparse.Namespace) -> int:
    from slsa_dist import oms
    from slsa_dist.keys import load_signer, load_verifier

    if args.oms_command == "sign":
        path = oms.sign_model(args.model, signer=load_signer(args.key), signature=args.signature)
        print(f"wrote {path}")
        return EXIT_OK
    manifest = oms.verify_model(args.model, signature=args.signature,
                                key=load_verifier(args.key))
    print(f"verified {args.model}: {len(manifest.resources)} resource(s), "
          f"root sha256 {manifest.root_digest}")
    return EXIT_OK


def _cmd_tpm(args: argparse.Namespace) -> int:
    import socket

    from slsa_dist.attest import tpm

    fingerprint, created = tpm.enroll()
    line = f"{fingerprint} {args.name or socket.gethostname()}"
    if args.append is not None:
        with args.append.open("a") as handle:
            handle.write(line + "\n")
    print(line)
    print(f"{'enrolled a new' if created else 'kept the enrolled'} AK at persistent handle "
          f"{tpm.AK_HANDLE:#x}", file=sys.stderr)
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
    verify.add_argument("bundle", type=Path, nargs="?")
    verify.add_argument("--key", action="append", default=[], type=Path,
                        help="trusted public key (PEM); repeatable")
    verify.add_argument("--artifact", action="append", default=[], type=Path,
                        help="file or directory that must match a subject; repeatable")
    verify.add_argument("--builder-id", help="the builder.id to require")
    verify.add_argument("--require-attestation", choices=["tpm", "tdx", "snp", "nvidia-cc", "any"],
                        help="fail unless every node has verified evidence of this kind")
    verify.add_argument("--trusted-aks", type=Path, metavar="FILE",
                        help="with --require-attestation tpm: count only quotes by these AKs "
                             "(lines from `slsa-dist tpm enroll`)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument("--chain", metavar="ARTIFACT",
                        help="follow ARTIFACT (a path or a sha256) back through its provenance")
    verify.add_argument("--store", type=Path, help="attestation store for --chain")
    verify.add_argument("--policy", type=Path, help="chain policy file (JSON or YAML)")
    verify.add_argument("--emit-vsa", type=Path, metavar="OUT",
                        help="write a signed Verification Summary Attestation")
    verify.add_argument("--vsa-key", type=Path, help="key that signs the VSA")
    verify.add_argument("--resource-uri", help="the VSA's resourceUri (default: the artifact)")
    verify.set_defaults(handler=_cmd_verify)

    store = sub.add_parser("store", help="an attestation store indexed by subject digest")
    store_sub = store.add_subparsers(dest="store_command", required=True, parser_class=_Parser)
    store_add = store_sub.add_parser("add", help="add bundles and index what they produced")
    store_add.add_argument("bundles", nargs="+", type=Path)
    store_add.add_argument("--store", required=True, type=Path)
    store_add.set_defaults(handler=_cmd_store)
    store_find = store_sub.add_parser("find", help="bundles that produced a sha256 digest")
    store_find.add_argument("digest")
    store_find.add_argument("--store", required=True, type=Path)
    store_find.set_defaults(handler=_cmd_store)

    report = sub.add_parser("report", help="one self-contained HTML report")
    report.add_argument("bundles", nargs="+", type=Path)
    report.add_argument("-o", "--output", required=True, type=Path)
    report.add_argument("--key", action="append", default=[], type=Path,
                        help="verify each bundle with this public key too")
    report.add_argument("--chain", help="include chain verification of this artifact")
    report.add_argument("--store", type=Path)
    report.add_argument("--policy", type=Path)
    report.set_defaults(handler=_cmd_report)

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
    digest.add_argument("--mmap", action="store_true",
                        help="hash from the page cache without copying (~10%% faster); only "
                             "for files nothing else modifies: a file truncated while mapped "
                             "ends the process with SIGBUS")
    digest.add_argument("--cache", type=Path, help="digest cache file (default: ~/.cache/...)")
    digest.add_argument("--json", action="store_true", help="one JSON document")
    digest.set_defaults(handler=_cmd_digest)

    oms_parser = sub.add_parser("oms", help="OpenSSF Model Signing signature files")
    oms_sub = oms_parser.add_subparsers(dest="oms_command", required=True, parser_class=_Parser)
    for name, key_help in (("sign", "ECDSA P-256 private key (PEM)"),
                           ("verify", "public key (PEM)")):
        command = oms_sub.add_parser(name, help=f"{name} an OMS signature file (key-based)")
        command.add_argument("model", type=Path)
        command.add_argument("--key", required=True, type=Path, help=key_help)
        command.add_argument("--signature", required=True, type=Path, help="e.g. model.sig")
        command.set_defaults(handler=_cmd_oms)

    run = sub.add_parser("run", help="run one step and sign its provenance")
    run.add_argument("--input", action="append", default=[], type=Path,
                     help="an input dataset (file or directory); repeatable")
    run.add_argument("--input-model", action="append", default=[], type=Path,
                     help="an input model; repeatable")
    run.add_argument("--output", action="append", default=[], type=Path, required=True,
                     help="an output the step produces; repeatable")
    run.add_argument("--key", required=True, type=Path, help="signing key (PEM)")
    run.add_argument("--bundle", required=True, type=Path, help="where to write the bundle")
    run.add_argument("--step-id", help="invocation id (default: step-<time>)")
    run.add_argument("--step-type", default="transform",
                     help="what the step does: cleaning, tokenization, quantization, ...")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    run.set_defaults(handler=_cmd_run)

    coordinator = sub.add_parser("coordinator", help="run a job's coordinator")
    coordinator.add_argument("--job-id", required=True)
    coordinator.add_argument("--listen", required=True, help="host:port (port 0 picks one)")
    coordinator.add_argument("--key", required=True, type=Path, help="signing key (PEM)")
    coordinator.add_argument("--out", required=True, type=Path, help="where bundles go")
    coordinator.add_argument("--world-size", type=int)
    coordinator.add_argument("--journal", type=Path,
                             help="journal path (default OUT/JOB.journal.sqlite)")
    coordinator.add_argument("--builder-id", default=DEFAULT_BUILDER_ID)
    coordinator.add_argument("--idle-timeout", type=float,
                             help="finalize after this many seconds without a message")
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
    coordinator.set_defaults(handler=_cmd_coordinator)

    ca = sub.add_parser("ca", help="job CA and per-identity certificates (mutual TLS)")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, parser_class=_Parser)
    ca_init = ca_sub.add_parser("init", help="create a job CA")
    ca_init.add_argument("--job-id", required=True)
    ca_init.add_argument("--out", required=True, type=Path)
    ca_init.add_argument("--days", type=int, default=30)
    ca_init.set_defaults(handler=_cmd_ca)
    ca_issue = ca_sub.add_parser("issue", help="issue a certificate for one identity")
    ca_issue.add_argument("--ca", required=True, type=Path, help="directory from `ca init`")
    ca_issue.add_argument("--role", required=True,
                          choices=["coordinator", "node", "rank", "admin"])
    ca_issue.add_argument("--name", help="node id or rank number")
    ca_issue.add_argument("--host", action="append", default=[],
                          help="DNS name or IP the coordinator is reached at; repeatable")
    ca_issue.add_argument("--out", required=True, type=Path)
    ca_issue.add_argument("--days", type=int, default=30)
    ca_issue.set_defaults(handler=_cmd_ca)

    tpm = sub.add_parser("tpm", help="this node's TPM")
    tpm_sub = tpm.add_subparsers(dest="tpm_command", required=True, parser_class=_Parser)
    enroll = tpm_sub.add_parser("enroll", help="keep one attestation key (AK) in this node's "
                                "TPM and print its fingerprint for --trusted-aks")
    enroll.add_argument("--name", help="the name printed after the fingerprint (default: "
                        "the host name)")
    enroll.add_argument("--append", type=Path, metavar="FILE",
                        help="also append the line to FILE (a trusted AK list)")
    enroll.set_defaults(handler=_cmd_tpm)

    finalize = sub.add_parser("finalize", help="ask a coordinator to finalize now")
    finalize.add_argument("--coordinator", required=True, help="host:port")
    finalize.add_argument("--job-id", required=True)
    finalize.add_argument("--timeout", type=float, default=60.0)
    finalize.add_argument("--tls", type=Path, metavar="DIR",
                          help="an admin certificate directory (mutual TLS)")
    finalize.set_defaults(handler=_cmd_finalize)
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
