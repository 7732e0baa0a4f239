"""Verify a provenance bundle: signature, predicate, subjects, builder, completeness.

Each check yields a :class:`Check`; :func:`verify_bundle` returns the verified
:class:`~slsa_dist.model._provenance.Provenance` or raises :class:`VerificationError`
carrying every check that ran, so a CLI can print one line per check.

The envelope's exact payload bytes are verified before anything parses them.

>>> # verify_bundle("job.intoto.jsonl", keys=[load_verifier("signing.pub")],
>>> #               artifacts=["checkpoints/final"])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slsa_dist.digest._manifest import (
    DEFAULT_SHARD_SIZE,
    Manifest,
    digest_path,
    signed_ignore_paths,
)
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.model._digests import FILE_ALGORITHMS
from slsa_dist.model._ledger import LedgerError, LedgerLine, LedgerRecords, read_ledger
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import (
    INDEX_URI,
    MEDIA_CHECKPOINT,
    MEDIA_INPUT,
    MEDIA_NODE,
    MEDIA_RANK,
    Checkpoint,
)
from slsa_dist.model._statement import PREDICATE_TYPE, ResourceDescriptor, Statement
from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, verify_envelope
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Verifier

__all__ = ["FILES_ANNOTATION", "VSA_PREDICATE_TYPE", "Check", "VerificationFailed",
           "VsaExpectations", "check_artifact", "check_bundle", "verify_bundle"]

VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
# A VSA subject's annotation holding what its artifact check needs: {"serialization": the
# OMS serialization to hash with, "sha256": Manifest.names_digest, "count": files}.
FILES_ANNOTATION = "slsadist_files"


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


class VerificationFailed(VerificationError):  # noqa: N818 -- reads as a verdict
    """Verification failed; ``checks`` holds every check that ran."""

    def __init__(self, checks: Sequence[Check]) -> None:
        failed = [c for c in checks if not c.ok]
        super().__init__("; ".join(f"{c.name}: {c.detail}" for c in failed))
        self.checks = list(checks)


@dataclass
class _Outcome:
    checks: list[Check] = field(default_factory=list)
    provenance: Provenance | None = None
    warnings: list[str] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def _subject_for(path: Path, subjects: Sequence[ResourceDescriptor]) -> ResourceDescriptor | None:
    """The subject named like ``path``: its name's components end ``path``'s, else
    the last component alone matches (a checkpoint copied elsewhere)."""
    parts = path.resolve().parts
    for subject in subjects:
        name = Path(subject.name or "").parts
        if name and parts[-len(name):] == name:
            return subject
    for subject in subjects:
        if subject.name and Path(subject.name).name == path.name:
            return subject
    return None


def _checkpoint_record(provenance: Provenance, name: str | None) -> Checkpoint | None:
    return provenance.checkpoint(name) if name else None


def _expected_manifest(record: Checkpoint, name: str) -> Manifest:
    """The manifest a signed checkpoint record names.

    Raises:
        InputError: the record is malformed (no serialization, a bad resource).
    """
    if not record.serialization:
        raise InputError(f"checkpoint record {name!r}: expected an OMS serialization, "
                         "found none")
    return Manifest.from_oms(name=name, serialization=record.serialization,
                             resources=list(record.resources))


def _hashing(serialization: Mapping[str, Any]) -> dict[str, Any]:
    """How to hash an artifact as ``serialization`` says (OMS defaults where it says
    nothing; ``ignore_paths`` exactly as signed, ``[]`` ignoring nothing).

    Raises:
        InputError: the serialization is malformed.
    """
    shard_size = serialization.get("shard_size") or DEFAULT_SHARD_SIZE
    if isinstance(shard_size, float) and shard_size.is_integer():
        shard_size = int(shard_size)  # model_signing writes it through a protobuf Struct
    if isinstance(shard_size, bool) or not isinstance(shard_size, int):
        raise InputError(f"serialization.shard_size: expected an integer, found "
                         f"{shard_size!r:.40}")
    return {"algorithm": str(serialization.get("hash_type", "sha256")),
            "method": "shards" if serialization.get("method") == "shards" else "files",
            "shard_size": shard_size, "ignore_paths": signed_ignore_paths(serialization)}


def _check_artifact(out: _Outcome, provenance: Provenance, path: Path) -> None:
    out.checks.append(check_artifact(provenance, path))


def check_artifact(provenance: Provenance, path: Path) -> Check:
    """``path`` is a subject of ``provenance``: by digest, and file by file by name
    against the subject's signed checkpoint record.

    Fails closed: a folder whose subject has no signed file list (a record ledger
    withheld, a record missing or malformed) fails, naming what is missing; only a
    plain file may match a subject without one, by its own SHA-256.

    Raises:
        InputError: nothing at ``path``, or a file there cannot be read.
    """
    name = f"artifact {path}"
    if not path.exists():
        raise InputError(f"artifact: expected a file or directory at {path}, found nothing")
    subjects = provenance.statement.subjects
    subject = _subject_for(path, subjects)
    try:
        record = _checkpoint_record(provenance, subject.name if subject else path.name)
    except LedgerError as exc:
        return Check(name, False, f"expected the signed checkpoint record of "
                     f"{subject.name if subject else path.name!r}, found: {exc}")
    serialization: Mapping[str, Any] = record.serialization if record else {}
    try:
        hashing = _hashing(serialization)
    except InputError as exc:
        return Check(name, False, f"expected a well-formed serialization in the signed "
                     f"checkpoint record of {subject.name if subject else path.name!r}, "
                     f"found: {exc}")
    manifest = digest_path(path, **hashing)
    candidates = manifest.subject_digests
    matched = [s for s in subjects if s.digest.get("sha256") in candidates]
    if matched:
        return _check_named_files(provenance, path, manifest, subject=matched[0],
                                  hashed_with=serialization)
    if subject is None:
        return Check(name, False, "expected a subject with this digest, found none "
                     f"(sha256 {manifest.root_digest[:16]}... is not among {len(subjects)} "
                     "subject(s))")
    detail = (f"expected sha256 {subject.digest.get('sha256', '?')[:16]}... for subject "
              f"{subject.name!r}, found {manifest.root_digest[:16]}...")
    try:
        expected = _expected_manifest(record, subject.name or "") if record else None
    except InputError:
        expected = None  # failing already; the record's own fault is said when it matches
    differences = manifest.diff_summary(expected) if expected is not None else ""
    if differences:
        detail += "; " + differences
    return Check(name, False, detail)


def _check_named_files(provenance: Provenance, path: Path, manifest: Manifest, *,
                       subject: ResourceDescriptor, hashed_with: Mapping[str, Any]) -> Check:
    """The digest matched; the files must be the ones the signed record names.

    The OMS root covers per-file digests in name order, not the names: a rename
    that keeps the order, or one file holding the raw digest list, reproduces it.
    """
    name = f"artifact {path}"
    label = repr(subject.name)
    try:
        signed = _checkpoint_record(provenance, subject.name)
    except LedgerError as exc:
        return Check(name, False, f"expected the signed checkpoint record of subject {label} "
                     f"to check its files by name, found: {exc}")
    if signed is None:
        ledger = provenance.ledger()
        plain = manifest.method == "files" and [r.path for r in manifest.resources] == ["."]
        if ledger is not None and provenance.source is None:
            return Check(name, False, f"expected the record ledger {ledger.uri} beside the "
                         f"bundle to check the files of subject {label} by name (its "
                         "checkpoint record is there), found none that checks out (withheld, "
                         "or failing the ledger check): the digest alone does not bind file "
                         "names")
        if ledger is None and plain and subject.digest.get("sha256") == manifest.identity:
            return Check(name, True, f"matches subject {label} (sha256 "
                         f"{subject.digest['sha256'][:16]}...), a plain file by its own "
                         "SHA-256 (the statement carries no file list for it)")
        where = "the signed ledger" if ledger is not None else "the statement"
        return Check(name, False, f"expected a checkpoint record naming the files of subject "
                     f"{label} in {where}, found none: a folder is not checked by its root "
                     "digest alone")
    try:
        expected = _expected_manifest(signed, subject.name or "")
    except InputError as exc:
        return Check(name, False, f"expected a well-formed signed checkpoint record for "
                     f"subject {label}, found: {exc}")
    if dict(signed.serialization) != dict(hashed_with):  # matched under another name
        manifest = digest_path(path, algorithm=expected.algorithm, method=expected.method,
                               shard_size=expected.shard_size or DEFAULT_SHARD_SIZE,
                               ignore_paths=expected.ignore_paths)
    differences = manifest.diff_summary(expected)
    if differences:
        return Check(name, False, f"expected the files of subject {label} as its signed "
                     f"checkpoint record names them, found: {differences}")
    if subject.digest.get("sha256") not in expected.subject_digests:
        return Check(name, False, f"expected the signed checkpoint record of subject {label} "
                     f"to reproduce its digest, found sha256 {expected.root_digest[:16]}...")
    return Check(name, True, f"matches subject {label} "
                 f"(sha256 {subject.digest['sha256'][:16]}...), "
                 f"{len(manifest.resources)} file(s) by name")


def _check_ledger(out: _Outcome, provenance: Provenance, bundle: Path, *,
                  read_all: bool) -> tuple[Provenance, set[int] | None]:
    """A record ledger the statement binds: read whole, line by line, against its signed
    digest, Merkle root and counts; returns the provenance with the ledger attached and
    the ranks whose record says completed (None when the ledger was not read)."""
    ledger = provenance.ledger()
    if ledger is None:
        return provenance, None
    path = ledger.locate(bundle)
    if not path.exists():
        out.warnings.append(f"record ledger {path.name} not found beside the bundle: the "
                            f"{ledger.count} per-rank, per-node and per-checkpoint records it "
                            "holds were not checked (completeness rests on the signed summary)")
        return provenance, None
    attached = provenance.with_records(LedgerRecords(path, ledger))
    if not read_all:
        out.warnings.append(f"record ledger {path.name} not read in full (--rank): only the "
                            "records asked for were checked, each by an inclusion proof")
        return attached, None
    completed: set[int] = set()
    nodes = ranks = inputs = 0
    declared = {(algorithm, value) for dependency in provenance.dependencies
                for algorithm, value in dependency.digest.items()}
    listed: dict[str, set[str]] = {}  # checkpoint -> its files (those lines come first)
    try:
        for line in read_ledger(path, ledger):
            if line.media_type == MEDIA_CHECKPOINT:
                listed[str(line.record.get("name"))] = {
                    str(r.get("name")) for r in line.record.get("resources") or ()
                    if isinstance(r, dict)}
            elif line.media_type == MEDIA_INPUT:
                _check_input(line, declared)
                inputs += 1
            elif line.media_type == MEDIA_RANK:
                ranks += 1
                _check_refs(line, inputs, listed)
                rank = line.record.get("rank")
                if line.record.get("completed") is True and isinstance(rank, int) \
                        and line.name == f"rank/{rank}":
                    completed.add(rank)
            nodes += line.media_type == MEDIA_NODE
    except LedgerError as exc:
        out.add("ledger", False, str(exc))
        return provenance, set()
    summary = ledger.summary
    expected = {"ranks": ranks, "completedRanks": len(completed), "nodes": nodes}
    differs = {k: (summary.get(k), v) for k, v in expected.items()
               if k in summary and summary.get(k) != v}
    if differs:
        out.add("ledger", False, "expected the signed summary to match the ledger, found "
                + ", ".join(f"{k} {a} signed vs {b} in the ledger" for k, (a, b) in
                            differs.items()))
        return provenance, set()
    out.add("ledger", True, f"{path.name}: {ledger.count} record(s), sha256 and Merkle root "
            f"{ledger.merkle_root[:16]}... as signed")
    return attached, completed


def _check_input(line: LedgerLine, declared: set[tuple[str, str]]) -> None:
    """An input line names data the statement declares: its digest is a resolved
    dependency (an index space, which is no data, excepted)."""
    record = line.record
    if str(record.get("uri", "")).startswith(INDEX_URI):
        return
    digest = record.get("digest")
    if not isinstance(digest, dict) or not any((a, v) in declared for a, v in digest.items()):
        raise LedgerError(f"ledger {line.name}: expected the digest of a resolved dependency "
                          f"of the statement, found {record.get('name')!r} {digest!r}, which "
                          "the statement does not declare")


def _check_refs(line: LedgerLine, inputs: int, listed: Mapping[str, set[str]]) -> None:
    """Each shard a rank record refers to is an input line before it, and each file it
    names without a digest (the digest is its checkpoint's) is a file of that
    checkpoint."""
    for written in line.record.get("files") or ():
        if not isinstance(written, dict) or any(a in written for a in FILE_ALGORITHMS):
            continue  # its own digest
        artifact, path = written.get("artifact"), written.get("path")
        if path not in listed.get(str(artifact), ()):
            raise LedgerError(f"ledger {line.name}: expected file {path!r} of checkpoint "
                              f"{artifact!r} (its digest left to that checkpoint's line), "
                              "found no such file there")
    for shard in line.record.get("shards") or ():
        if isinstance(shard, dict) and "input" not in shard:
            continue  # named in full
        ref = shard.get("input") if isinstance(shard, dict) else None
        if not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < inputs:
            raise LedgerError(f"ledger {line.name}: expected shards to refer to input lines "
                              f"0..{inputs - 1}, found {ref!r}")


def _check_completeness(out: _Outcome, provenance: Provenance,
                        completed: set[int] | None) -> None:
    world_size = provenance.world_size
    completeness = provenance.completeness()
    if world_size is None and completeness is None:
        return
    problems: list[str] = []
    if world_size is not None:
        if completed is None and provenance.ledger() is None:
            completed = {r.rank for r in provenance.rank_records() if r.completed}
        if completed is not None:
            missing = [r for r in range(world_size) if r not in completed]
        else:  # the ledger was not read: the signed completeness record says who is missing
            missing = list(completeness.missing_ranks) if completeness is not None else []
        if missing:
            problems.append(f"ranks without a completed report: {_ranges(missing)}")
    if completeness is not None:
        problems.extend(f"{label}: {_summary(list(entries))}"
                        for label, entries in completeness.problems)
        elastic = "worldSizeRange" in provenance.external_parameters
        if completeness.departed_nodes and not elastic:
            # A job whose world size is fixed has no node to lose: a later attempt without
            # one is another job's word for the ranks it ran (issue 25 F1).
            problems.append("nodes left a job whose world size is fixed: "
                            + _summary(list(completeness.departed_nodes)))
        elif completeness.departed_nodes:
            out.warnings.append("nodes left the job before its final attempt (their part is "
                                "recorded up to then): "
                                + "; ".join(completeness.departed_nodes))
        if completeness.outputs_recorded is False:
            out.warnings.append("no outputs recorded: the job saved nothing slsa-dist saw, "
                                "so its subject stands for the run itself (pass "
                                "--require-outputs to fail on this)")
    if problems:
        out.add("completeness", False, "; ".join(problems))
    else:
        size = f"all {world_size} ranks reported" if world_size is not None else "no gaps recorded"
        out.add("completeness", True, size)


def _summary(value: object) -> str:
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return _ranges(int(v) for v in value)
        text = ", ".join(json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
                         for v in value[:5])
        return text + (f" (+{len(value) - 5} more)" if len(value) > 5 else "")
    return str(value)


def _ranges(values: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``: long rank lists stay one line."""
    ordered = sorted(set(values))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _run(out: _Outcome, envelopes: Sequence[Envelope], keys: Sequence[Verifier], *,
         bundle: Path, artifacts: Sequence[str | os.PathLike[str]], builder_id: str | None,
         vsa: VsaExpectations, provenance_flags: Sequence[str],
         require_outputs: bool, read_ledger_whole: bool) -> Iterator[Check]:
    payload: bytes | None = None
    errors: list[str] = []
    for index, envelope in enumerate(envelopes):
        try:
            payload = verify_envelope(envelope, keys, payload_type=IN_TOTO_PAYLOAD_TYPE)
        except VerificationError as exc:
            errors.append(f"envelope {index + 1}: {exc}")
            continue
        break
    if payload is None:
        out.add("signature", False, "; ".join(errors))
        yield out.checks[-1]
        return
    out.add("signature", True, f"DSSE signature by a trusted key over {len(payload)} bytes")
    yield out.checks[-1]
    try:
        statement = Statement.from_dict(json.loads(payload))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        out.add("statement", False, f"expected a JSON in-toto Statement, found malformed JSON "
                f"({exc})")
        yield out.checks[-1]
        return
    except InputError as exc:
        out.add("statement", False, str(exc))
        yield out.checks[-1]
        return
    if statement.predicate_type == VSA_PREDICATE_TYPE:
        if provenance_flags:
            raise InputError(f"{provenance_flags[0]}: expected a provenance bundle, found a "
                             f"Verification Summary Attestation (a VSA carries no builder, "
                             f"nodes or evidence to check)")
        yield from _vsa_checks(out, statement, artifacts, vsa)
        return
    if vsa != VsaExpectations():
        raise InputError("--verifier-id/--resource-uri/--verified-level: expected a "
                         "Verification Summary Attestation, found a provenance")
    if statement.predicate_type != PREDICATE_TYPE:
        out.add("predicateType", False, f"expected {PREDICATE_TYPE!r} or "
                f"{VSA_PREDICATE_TYPE!r}, found {statement.predicate_type!r}")
        yield out.checks[-1]
        return
    try:
        provenance = Provenance.from_statement(statement)
    except InputError as exc:
        out.add("predicate", False, str(exc))
        yield out.checks[-1]
        return
    out.add("predicateType", True, PREDICATE_TYPE)
    yield out.checks[-1]
    before = len(out.checks)
    try:
        provenance, completed = _check_ledger(out, provenance, bundle,
                                              read_all=read_ledger_whole)
    except (LedgerError, InputError) as exc:
        out.add("ledger", False, str(exc))
        completed = set()
    out.provenance = provenance
    yield from out.checks[before:]
    if builder_id is not None:
        out.add("builder.id", provenance.builder_id == builder_id,
                f"expected {builder_id!r}, found {provenance.builder_id!r}")
        yield out.checks[-1]
    else:  # the builder id is what the level rests on: say when nobody checked it
        out.warnings.append(f"builder.id not checked (the provenance says "
                            f"{provenance.builder_id!r}); pass --builder-id")
    for artifact in artifacts:
        _check_artifact(out, provenance, Path(artifact))
        yield out.checks[-1]
    before = len(out.checks)
    _check_completeness(out, provenance, completed)
    if require_outputs:
        completeness = provenance.completeness()
        recorded = completeness is None or completeness.outputs_recorded is not False
        out.add("outputs", recorded, "the job recorded its outputs as subjects" if recorded
                else "expected at least one recorded output, found none (the subject stands "
                     "for the run itself)")
    yield from out.checks[before:]


@dataclass(frozen=True)
class VsaExpectations:
    """What a VSA consumer requires of a Verification Summary (as slsa-verifier's
    ``verify-vsa`` does); ``None`` leaves a field unchecked, and the output says so."""

    verifier_id: str | None = None
    resource_uri: str | None = None
    verified_level: int | None = None


def _vsa_checks(out: _Outcome, statement: Statement, artifacts: Sequence[str | os.PathLike[str]],
                expect: VsaExpectations) -> Iterator[Check]:
    """A Verification Summary: its result, verifier, resource, level and subjects."""
    predicate = statement.predicate
    out.add("predicateType", True, VSA_PREDICATE_TYPE)
    yield out.checks[-1]
    verifier = (predicate.get("verifier") or {}).get("id")
    result = predicate.get("verificationResult")
    levels = predicate.get("verifiedLevels")
    out.add("verificationResult", result == "PASSED",
            f"expected 'PASSED', found {result!r} (verifier {verifier}, levels {levels})")
    yield out.checks[-1]
    for field_name, flag, wanted, found in (
            ("verifier.id", "--verifier-id", expect.verifier_id, verifier),
            ("resourceUri", "--resource-uri", expect.resource_uri, predicate.get("resourceUri"))):
        if wanted is None:
            out.warnings.append(f"{field_name} not checked (the VSA says {found!r}); pass {flag}")
            continue
        out.add(field_name, found == wanted, f"expected {wanted!r}, found {found!r}")
        yield out.checks[-1]
    if expect.verified_level is not None:
        granted = [int(v.rsplit("_", 1)[1]) for v in levels or []
                   if isinstance(v, str) and v.startswith("SLSA_BUILD_LEVEL_")
                   and v.rsplit("_", 1)[1].isdigit()]
        out.add("verifiedLevels", any(g >= expect.verified_level for g in granted),
                f"expected SLSA_BUILD_LEVEL_{expect.verified_level} or higher, found {levels}")
        yield out.checks[-1]
    for artifact in artifacts:
        out.checks.append(_vsa_artifact(statement.subjects, Path(artifact)))
        yield out.checks[-1]


def _vsa_artifact(subjects: Sequence[ResourceDescriptor], path: Path) -> Check:
    """``path`` is a VSA subject: its digest and, recomputed from the disk with the
    subject's signed serialization, the digest over its file names and digests. A
    subject without that file list cannot be checked by name and is refused."""
    name = f"artifact {path}"
    if not path.exists():
        raise InputError(f"artifact: expected a file or directory at {path}, found nothing")
    hashed: dict[str, Manifest] = {}
    unnamed: list[str] = []
    renamed: list[str] = []
    for subject in subjects:
        files = subject.annotations.get(FILES_ANNOTATION)
        serialization = files.get("serialization") if isinstance(files, Mapping) else None
        names = files.get("sha256") if isinstance(files, Mapping) else None
        try:
            if not isinstance(serialization, Mapping) or not isinstance(names, str):
                raise InputError("no file list")
            hashing = _hashing(serialization)
        except InputError:
            unnamed.append(repr(subject.name))
            continue
        key = json.dumps(hashing, sort_keys=True)
        manifest = hashed.get(key) or hashed.setdefault(key, digest_path(path, **hashing))
        if subject.digest.get("sha256") not in manifest.subject_digests:
            continue
        if manifest.names_digest == names:
            return Check(name, True, f"matches VSA subject {subject.name!r} (sha256 "
                         f"{subject.digest['sha256'][:16]}...), {len(manifest.resources)} "
                         "file(s) by name")
        renamed.append(repr(subject.name))
    if renamed:
        return Check(name, False, f"expected the file names and digests of VSA subject "
                     f"{', '.join(renamed)}, found the root digest matching but the file names "
                     "not (a file renamed or moved, or a file standing for a folder)")
    if unnamed:
        return Check(name, False, f"expected VSA subject {', '.join(unnamed)} to carry its file "
                     f"list (annotations.{FILES_ANNOTATION}), found none: without it the "
                     "artifact's file names cannot be checked (ask the verifier for a VSA "
                     "that carries it)")
    shown = next(iter(hashed.values()), None)
    return Check(name, False, "expected a subject with this artifact's digest, found none"
                 + (f" (sha256 {shown.identity[:16]}...)" if shown is not None else ""))


def check_bundle(
    bundle: str | os.PathLike[str],
    *,
    keys: Sequence[Verifier],
    artifacts: Sequence[str | os.PathLike[str]] = (),
    builder_id: str | None = None,
    vsa: VsaExpectations | None = None,
    provenance_flags: Sequence[str] = (),
    warnings: list[str] | None = None,
    require_outputs: bool = False,
    read_ledger_whole: bool = True,
) -> tuple[list[Check], Provenance | None]:
    """All checks for ``bundle``, and its provenance when it is one and the signature held.

    A Verification Summary Attestation yields its own checks (against ``vsa``) and no
    provenance. ``provenance_flags`` names options the caller will apply to a
    provenance (``--require-attestation``); a VSA with any of them is refused.
    What was left unchecked is appended to ``warnings``. With ``require_outputs`` a job
    that recorded no output fails (otherwise it is only a warning). A record ledger
    beside the bundle is read whole unless ``read_ledger_whole`` is False (then records
    are checked one at a time, by inclusion proofs, as they are asked for).

    Raises:
        InputError: the bundle or an artifact cannot be read, or options that do not
            fit the kind of attestation found.
    """
    envelopes = read_bundle(bundle)
    out = _Outcome()
    flags = [*(["--builder-id"] if builder_id is not None else []),
             *(["--require-outputs"] if require_outputs else []), *provenance_flags]
    checks = list(_run(out, envelopes, keys, bundle=Path(bundle), artifacts=artifacts,
                       builder_id=builder_id, vsa=vsa or VsaExpectations(),
                       provenance_flags=flags, require_outputs=require_outputs,
                       read_ledger_whole=read_ledger_whole))
    if warnings is not None:
        warnings.extend(out.warnings)
    return checks, out.provenance


def verify_bundle(
    bundle: str | os.PathLike[str],
    *,
    keys: Sequence[Verifier],
    artifacts: Sequence[str | os.PathLike[str]] = (),
    builder_id: str | None = None,
    require_outputs: bool = False,
) -> Provenance:
    """Verify ``bundle`` and return its provenance.

    Raises:
        VerificationFailed: any check failed (``.checks`` lists them all).
        InputError: the bundle or an artifact cannot be read.
    """
    checks, provenance = check_bundle(bundle, keys=keys, artifacts=artifacts,
                                      builder_id=builder_id, require_outputs=require_outputs)
    if provenance is None or not all(c.ok for c in checks):
        raise VerificationFailed(checks)
    return provenance
