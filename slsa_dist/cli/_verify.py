"""``slsa-dist verify BUNDLE`` and ``slsa-dist verify chain ARTIFACT``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slsa_dist.cli._common import EXIT_FAILED, EXIT_OK, deprecated, say
from slsa_dist.errors import InputError
from slsa_dist.verify._attestation import REQUIREMENTS

if TYPE_CHECKING:
    from slsa_dist.cli._common import Subparsers
    from slsa_dist.sign._keys import Verifier
    from slsa_dist.verify._chain import ChainPolicy, ChainResult
    from slsa_dist.verify._result import Result

__all__ = ["register"]


def _verify_bundle(args: argparse.Namespace) -> int:
    from slsa_dist.sign._loaders import load_verifier

    if args.chain is not None:
        deprecated("`slsa-dist verify --chain ARTIFACT` is now `slsa-dist verify chain ARTIFACT`")
        return _verify_chain(args)
    if args.bundle is None or not args.key:
        raise InputError("verify: expected BUNDLE and --key (or `verify chain ARTIFACT --store "
                         "DIR --policy FILE`), found neither")
    kinds = _attestation_kinds(args)
    trusted_aks = None
    if args.trusted_aks is not None:
        from slsa_dist.attest._tpm import load_trusted_aks

        if "tpm" not in kinds:
            raise InputError("--trusted-aks: expected it with --require-attestation tpm, found "
                             f"{args.require_attestation or 'no attestation requirement'}")
        trusted_aks = load_trusted_aks(args.trusted_aks)
    if args.tcb_status and not {"tdx", "any"} & set(kinds):
        raise InputError("--tcb-status: expected it with --require-attestation tdx or any (a "
                         "TDX TCB status is what it narrows), found "
                         f"{args.require_attestation or 'no attestation requirement'}")
    if args.ek_roots and not {"tpm", "any"} & set(kinds):
        raise InputError("--ek-roots: expected it with --require-attestation tpm or any, found "
                         f"{args.require_attestation or 'no attestation requirement'}")
    keys = [load_verifier(path) for path in args.key]
    if str(args.bundle).startswith("oci://"):
        return _verify_oci(args, keys, trusted_aks)
    return _report(args, *_check(args, args.bundle, keys, args.artifact, trusted_aks))


def _reference_values(args: argparse.Namespace) -> Any:
    """The --reference-values file, read and checked once (None without the flag)."""
    if getattr(args, "reference_values", None) is None:
        return None
    from slsa_dist.attest._reference import ReferenceValues

    if not isinstance(args.reference_values, ReferenceValues):
        args.reference_values = ReferenceValues.load(args.reference_values)
    return args.reference_values


def _attestation_kinds(args: argparse.Namespace) -> list[str]:
    """The attestation requirements the flags make: --require-attestation's kind, and each
    kind --reference-values names (required of every node too), except that with
    --require-attestation any a node meets them with any one kind the file names."""
    kind = args.require_attestation
    reference = _reference_values(args)
    if reference is None or kind == "any":
        return [kind] if kind else []
    return list(dict.fromkeys([*([kind] if kind else []), *reference.kinds]))


def _read_ek_roots(paths: list[Path]) -> tuple[bytes, ...]:
    """The PEM files given with --ek-roots, each holding one or more root certificates
    (and any CRLs of the EK chain: ``X509 CRL`` blocks, read at appraisal)."""
    from slsa_dist.attest._pki import load_certificates
    from slsa_dist.attest._tpm import load_crls

    pems = []
    for path in paths:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InputError(f"--ek-roots: expected a readable PEM file at {path}, found "
                             f"{exc}") from None
        if not load_certificates(pem):
            raise InputError(f"--ek-roots {path}: expected PEM certificates, found none")
        try:
            load_crls(pem)  # CRLs of the EK chain may come with the roots
        except InputError as exc:
            raise InputError(f"--ek-roots {path}: {exc}") from None
        pems.append(pem)
    return tuple(pems)


def _verify_oci(args: argparse.Namespace, keys: list[Verifier],
                trusted_aks: Any) -> int:
    """``verify oci://REGISTRY/REPO@sha256:...``: the model and its attached bundles pulled,
    each bundle verified against the pulled model."""
    import tempfile

    from slsa_dist.verify import _oci as oci

    with tempfile.TemporaryDirectory(prefix="slsa-oci-") as tmp:
        pulled = oci.pull(args.bundle, tmp)
        if not pulled.bundles:
            raise InputError(f"verify {args.bundle}: expected a signed bundle attached to "
                             f"{pulled.digest}, found none")
        say(f"pulled {args.bundle}: model {pulled.digest}, "
            f"{len(pulled.bundles)} attached bundle(s)")
        codes = []
        for bundle in pulled.bundles:
            say(f"-- {bundle.name}")
            codes.append(_report(args, *_check(args, bundle, keys,
                                               [*args.artifact, pulled.model], trusted_aks)))
    return EXIT_OK if codes and all(c == EXIT_OK for c in codes) else EXIT_FAILED


def _check(args: argparse.Namespace, bundle: Any, keys: list[Verifier], artifacts: list[Any],
           trusted_aks: Any) -> tuple[Any, Result]:
    """The flags as a policy, and the bundle checked against it."""
    from slsa_dist.verify import _policy as policy
    from slsa_dist.verify._bundle import check_bundle

    for artifact in artifacts:  # a path the user typed that is not there: a usage error
        if not Path(artifact).exists():
            raise InputError(f"artifact: expected a file or directory at {artifact}, found "
                             "nothing")
    found: list[Any] = [policy.Artifacts(*artifacts)] if artifacts else []
    wanted: list[Any] = [*found]
    if args.builder_id is not None:
        wanted.append(policy.BuilderId(args.builder_id))
    # --rank proves one record without reading the ledger whole: completeness then rests
    # on the signed completeness record, and the check says so.
    wanted.append(policy.Complete(from_summary=args.rank is not None,
                                  allow_capture_gaps=args.allow_capture_gaps))
    if args.rank is not None:
        wanted.append(policy.Rank(args.rank))
    if args.require_outputs:
        wanted.append(policy.Outputs())
    reference = _reference_values(args)
    for kind in _attestation_kinds(args):
        named = reference is not None and (kind == "any" or kind in reference.kinds)
        wanted.append(policy.Attestation(
            kind, trusted_aks=trusted_aks if kind == "tpm" else None,
            ek_roots=_read_ek_roots(args.ek_roots),
            tcb_statuses=frozenset(args.tcb_status)
            if args.tcb_status and kind in ("tdx", "any") else None,
            reference_values=reference if named else None))
    summary = policy.VsaSummary(verifier_id=args.verifier_id, resource_uri=args.resource_uri,
                                verified_level=args.verified_level)
    result = check_bundle(bundle, keys=keys, policy=policy.ByKind(
        provenance=policy.AllOf(*wanted), vsa=policy.AllOf(summary, *found)))
    flags = {"--builder-id": args.builder_id, "--require-outputs": args.require_outputs or None,
             "--require-attestation": args.require_attestation,
             "--trusted-aks": args.trusted_aks, "--tcb-status": args.tcb_status,
             "--ek-roots": args.ek_roots or None,
             "--reference-values": getattr(args, "reference_values", None),
             "--rank": args.rank}
    vsa_flags = {"--verifier-id": args.verifier_id, "--resource-uri": args.resource_uri,
                 "--verified-level": args.verified_level}
    if result.statement is not None and result.provenance is None:
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise InputError(f"{given[0]}: expected a provenance bundle, found a Verification "
                             "Summary Attestation (a VSA carries no builder, nodes or "
                             "evidence to check)")
    elif result.provenance is not None and any(v is not None for v in vsa_flags.values()):
        raise InputError("--verifier-id/--resource-uri/--verified-level: expected a "
                         "Verification Summary Attestation, found a provenance")
    return bundle, result


def _report(args: argparse.Namespace, bundle: Any, result: Result) -> int:
    if args.json:
        print(json.dumps({**result.to_dict(), "bundle": str(bundle)}, indent=2))
    else:
        for check in result.checks:
            say(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        for note in result.notes:
            say(f"WARN  {note}")
        say("verified" if result.ok else "NOT verified")
    return EXIT_OK if result.ok else EXIT_FAILED


def walk_chain(args: argparse.Namespace, command: str) -> tuple[ChainResult, ChainPolicy]:
    """``ARTIFACT --store DIR --policy FILE``, shared by ``verify chain`` and ``report``."""
    from slsa_dist.verify._chain import ChainPolicy, artifact_digest, verify_chain
    from slsa_dist.verify._store import Store

    if args.store is None or args.policy is None:
        raise InputError(f"{command}: expected --store DIR and --policy FILE, found "
                         f"{'no --store' if args.store is None else 'no --policy'}")
    policy = ChainPolicy.load(args.policy)
    artifact = Path(args.chain)
    if artifact.exists():
        root, name = artifact_digest(artifact), artifact.name
    elif len(args.chain) == 64 and not args.chain.strip("0123456789abcdef"):
        root, name = args.chain, f"sha256:{args.chain[:16]}"
    else:
        raise InputError(f"{command}: expected an artifact path or a sha256 digest, "
                         f"found {args.chain!r}")
    if str(args.store).startswith("oci://"):
        from slsa_dist.verify._oci import RegistryStore

        store: Any = RegistryStore(args.store)
    else:
        store = Store(args.store)
    result = verify_chain(root, name=name, store=store, policy=policy,
                          artifact=artifact if artifact.exists() else None)
    return result, policy


def _verify_chain(args: argparse.Namespace) -> int:
    from slsa_dist.sign._formats import write_signed
    from slsa_dist.sign._loaders import load_signer

    result, policy = walk_chain(args, "verify chain")
    artifact = Path(args.chain)
    if args.json:
        print(json.dumps({"verified": result.ok, "root": result.root,
                          "graph": list(result.lines()),
                          "gaps": [g.__dict__ for g in result.gaps],
                          "steps": [s.name for s in result.unique_steps()]}, indent=2))
    else:
        for line in result.lines():
            say(line)
        say(f"chain {'verified' if result.ok else 'NOT verified'}: "
              f"{len(result.unique_steps())} step(s), {len(result.gaps)} gap(s)")
    if args.emit_vsa is not None:
        if args.vsa_key is None:
            raise InputError("--emit-vsa: expected --vsa-key KEY to sign it, found none")
        from slsa_dist.verify._vsa import summarize

        envelope = summarize(result, policy=policy, signer=load_signer(args.vsa_key),
                             resource_uri=args.resource_uri or artifact.resolve().as_uri())
        say(f"wrote {write_signed(args.emit_vsa, envelope)}")
    return EXIT_OK if result.ok else EXIT_FAILED


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="attestation store (`slsa-dist store add`), or "
                        "oci://REGISTRY/REPO (models pushed there with their bundles)")
    parser.add_argument("--policy", type=Path, help="chain policy file (JSON or YAML)")


def _add_vsa_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--emit-vsa", type=Path, metavar="OUT",
                        help="write a signed Verification Summary Attestation (a Sigstore "
                             "bundle when OUT ends in .sigstore.json)")
    parser.add_argument("--vsa-key", type=Path, help="key that signs the VSA")
    parser.add_argument("--resource-uri", help="the VSA's resourceUri: written with --emit-vsa "
                        "(default: the artifact), required when verifying a VSA")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Subparsers) -> None:
    verify = sub.add_parser("verify", help="verify a provenance bundle (or `verify chain`)",
                            epilog="`slsa-dist verify chain ARTIFACT ...` follows a model back "
                                   "through its inputs' provenance.")
    verify.add_argument("bundle", nargs="?", help="a bundle file, or oci://REGISTRY/REPO@DIGEST "
                        "(the model and the bundles attached to it)")
    verify.add_argument("--key", action="append", default=[], type=Path,
                        help="trusted public key (PEM); repeatable")
    verify.add_argument("--artifact", action="append", default=[], type=Path,
                        help="file or directory that must match a subject; repeatable")
    verify.add_argument("--builder-id", help="the builder.id to require")
    verify.add_argument("--require-attestation", choices=REQUIREMENTS,
                        help="fail unless every node has verified evidence of this kind")
    verify.add_argument("--trusted-aks", type=Path, metavar="FILE",
                        help="with --require-attestation tpm: count only quotes by these AKs "
                             "(lines from `slsa-dist tpm enroll`)")
    verify.add_argument("--ek-roots", action="append", default=[], type=Path, metavar="PEM",
                        help="with --require-attestation tpm: count a quote only when its AK "
                             "was activated by an EK whose certificate chains to a root in "
                             "this PEM file (TPM manufacturers' or your own EK CA), and no "
                             "CRL in it (X509 CRL blocks) or carried revokes a certificate "
                             "of the chain; repeatable")
    verify.add_argument("--tcb-status", action="append", metavar="STATUS",
                        help="with --require-attestation: accept evidence with a vendor TCB "
                             "status (TDX) only if it is one of these (repeatable; e.g. "
                             "UpToDate); default: any status but Revoked")
    verify.add_argument("--reference-values", type=Path, metavar="FILE",
                        help="expected register values (JSON or YAML: TPM PCRs, TDX MRTD and "
                             "RTMRs, SNP measurement and policy, GPU measurements; "
                             "docs/attestation.md): every node's verified evidence of each "
                             "kind the file names must hold them")
    verify.add_argument("--rank", type=int, metavar="N",
                        help="check rank N's record (by an inclusion proof when the records "
                             "are in a ledger, which is then not read in full)")
    verify.add_argument("--allow-capture-gaps", action="store_true",
                        help="accept capture gaps the job declared allowed "
                             "(SLSA_ALLOW_CAPTURE_GAPS): by default they fail, since the "
                             "job's own environment declared them")
    verify.add_argument("--require-outputs", action="store_true",
                        help="fail when the job recorded no output (otherwise a warning)")
    verify.add_argument("--verifier-id", help="for a VSA: the verifier.id to require")
    verify.add_argument("--verified-level", type=int, choices=range(5), metavar="N",
                        help="for a VSA: require SLSA_BUILD_LEVEL_N or higher")
    verify.add_argument("--chain", metavar="ARTIFACT",
                        help="deprecated: use `slsa-dist verify chain ARTIFACT`")
    add_chain_arguments(verify)
    _add_vsa_arguments(verify)
    verify.set_defaults(handler=_verify_bundle)

    chain = sub.add_parser("verify-chain", prog="slsa-dist verify chain",
                           help="follow an artifact back through its provenance (spelled "
                                "`verify chain`)")
    chain.add_argument("chain", metavar="ARTIFACT", help="an artifact path or a sha256 digest")
    add_chain_arguments(chain)
    _add_vsa_arguments(chain)
    chain.set_defaults(handler=_verify_chain)

    attest = sub.add_parser("attest", help="hardware evidence outside a bundle")
    attest_sub = attest.add_subparsers(dest="attest_command", required=True,
                                       parser_class=type(attest))
    one = attest_sub.add_parser("verify", help="verify one piece of evidence up to its "
                                "vendor's pinned root and print the verdict (exit 0 only "
                                "when a pinned root was reached)")
    one.add_argument("evidence", type=Path, help="the evidence: a raw TDX quote or SNP report "
                     "(binary or hex), or an evidence blob as slsa-dist records it (JSON)")
    one.add_argument("--kind", required=True, choices=["tdx", "snp", "nvidia", "tpm"])
    one.add_argument("--collateral", action="append", default=[], type=Path, metavar="FILE",
                     help="TDX: the quote collateral JSON; SNP: the VCEK (DER or PEM), "
                          "optionally the ASK/ARK and AMD's CRL (PEM or DER); NVIDIA: the "
                          "GPU's certificate chain (PEM, leaf first), the driver and VBIOS "
                          "RIMs (SWID XML) "
                          "and OCSP answers (DER), one per file; repeatable, concatenated")
    one.add_argument("--at", metavar="TIME", help="judge certificates and collateral as of "
                     "this time (ISO 8601; default: now)")
    one.add_argument("--nonce", metavar="HEX", help="with --job and --node: check the report "
                     "data is this job's binding (otherwise the binding is not checked)")
    one.add_argument("--job", help="the job id the evidence must be bound to")
    one.add_argument("--node", help="the node id the evidence must be bound to")
    one.add_argument("--ek-roots", action="append", default=[], type=Path, metavar="PEM",
                     help="TPM: EK root certificates the EK certificate must chain to, "
                          "and CRLs of the chain (repeatable)")
    one.add_argument("--challenge", type=Path, metavar="FILE",
                     help="TPM: the coordinator's credential challenge record (JSON, the "
                          "node record's tpmChallenge) the evidence answers")
    one.add_argument("--reference-values", type=Path, metavar="FILE",
                     help="expected register values (JSON or YAML, docs/attestation.md): "
                          "verified evidence that does not hold them fails")
    one.add_argument("--json", action="store_true", help="machine-readable output")
    one.set_defaults(handler=_attest_verify)


def _as_pem(data: bytes) -> bytes:
    """One ``--collateral`` file as PEM when it is a lone DER certificate or CRL, so that
    files in either encoding concatenate; anything else as it is."""
    import warnings

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if not data.startswith(b"\x30"):
        return data
    for load in (x509.load_der_x509_certificate, x509.load_der_x509_crl):
        try:
            with warnings.catch_warnings():  # AMD's VLEKs have a non-positive serial
                warnings.simplefilter("ignore")
                return load(data).public_bytes(Encoding.PEM)
        except ValueError:
            continue
    return data


def _attest_verify(args: argparse.Namespace) -> int:
    """``slsa-dist attest verify``: one piece of evidence, its verdict; exit 0 if verified."""
    import base64
    import datetime as dt

    from slsa_dist.attest._registry import verify_evidence
    from slsa_dist.attest._verdict import Appraisal

    binding = (args.nonce, args.job, args.node)
    if any(binding) and not all(binding):
        given = [n for n, v in zip(("--nonce", "--job", "--node"), binding, strict=True) if v]
        raise InputError(f"--nonce, --job, --node: expected all three or none, found "
                         f"{', '.join(given)}")
    try:
        raw = args.evidence.read_bytes()
        collateral = b"".join(_as_pem(path.read_bytes()) for path in args.collateral)
        at = dt.datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
        nonce = bytes.fromhex(args.nonce) if args.nonce else b""
        challenge = args.challenge.read_bytes() if args.challenge else b""
    except (OSError, ValueError) as exc:
        raise InputError(f"attest verify: {exc}") from None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    kind = {"nvidia": "nvidia-cc"}.get(args.kind, args.kind)
    blob = raw
    if kind in ("tdx", "snp") and not raw.lstrip().startswith(b"{"):
        try:  # a raw report, binary or hex: wrap it as configfs-tsm evidence
            report = bytes.fromhex(raw.decode()) if raw.strip() and all(
                c in b"0123456789abcdefABCDEF \n\r" for c in raw) else raw
        except ValueError:
            report = raw
        blob = json.dumps({"provider": "tdx_guest" if kind == "tdx" else "sev_guest",
                           "outblob": base64.b64encode(report).decode()}).encode()
    if kind == "nvidia-cc" and not raw.lstrip().startswith(b"{"):  # a raw SPDM report, hex
        from slsa_dist.attest._nvidia import spdm_evidence

        try:
            blob = spdm_evidence(raw.decode("ascii", "replace").strip(),
                                 [path.read_bytes() for path in args.collateral])
        except OSError as exc:
            raise InputError(f"attest verify: {exc}") from None
        collateral = b""
    appraisal = Appraisal(at=at, collateral={kind: collateral} if collateral else {},
                          check_binding=bool(args.nonce), challenge=challenge,
                          ek_roots=_read_ek_roots(args.ek_roots))
    reference = _reference_values(args)
    if reference is not None and kind not in reference.kinds:
        raise InputError(f"--reference-values: expected registers of {kind}, found only "
                         f"{', '.join(reference.kinds)}")
    verdict = verify_evidence(kind, blob, nonce, args.job or "", args.node or "",
                              appraisal=appraisal)
    if reference is not None:
        from slsa_dist.attest._reference import appraise

        verdict = appraise(verdict, kind, reference)
    # Exit 0 only for evidence verified up to a pinned root (a vendor's, or the EK roots
    # given with the coordinator's challenge): a TPM quote checked only against the key
    # it names proves that some key signed it, and anyone makes one in software.
    counted = verdict.status == "verified" and bool(verdict.root)
    if args.json:
        print(json.dumps({**verdict.to_json(), "counted": counted}, indent=2, sort_keys=True))
    else:
        print(f"kind: {args.kind}\n{verdict.describe()}")
        if verdict.status == "verified" and not counted:
            print("not counted: verified up to no pinned root" + (
                " (a TPM quote's AK is tied to a TPM only with --ek-roots and the "
                "coordinator's --challenge)" if kind == "tpm" else ""))
    return 0 if counted else 1
