"""Artifacts on disk against what a verified statement signed: by digest, and file by file
by name (the OMS root covers per-file digests, not names).

:func:`check_artifact` checks a folder or file against a provenance's subjects and their
signed checkpoint records; :func:`check_vsa_artifact` against a Verification Summary's
subjects and the file list they carry. Both fail closed: what cannot be checked (no file
at the path, no signed file list, a ledger withheld) fails, naming what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slsa_dist.digest._manifest import (
    DEFAULT_SHARD_SIZE,
    Manifest,
    digest_path,
    signed_ignore_paths,
)
from slsa_dist.errors import InputError
from slsa_dist.model._ledger import LedgerError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import Checkpoint
from slsa_dist.model._statement import ResourceDescriptor
from slsa_dist.verify._result import Check

__all__ = ["FILES_ANNOTATION", "VSA_PREDICATE_TYPE", "check_artifact", "check_vsa_artifact"]

VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
# A VSA subject's annotation holding what its artifact check needs: {"serialization": the
# OMS serialization to hash with, "sha256": Manifest.names_digest, "count": files}.
FILES_ANNOTATION = "slsadist_files"


def _nothing_at(path: Path) -> Check:
    return Check(f"artifact {path}", False, f"expected a file or directory at {path} to check "
                 "against the subjects, found nothing")


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

def check_artifact(provenance: Provenance, path: Path) -> Check:
    """``path`` is a subject of ``provenance``: by digest, and file by file by name
    against the subject's signed checkpoint record.

    Fails closed: a folder whose subject has no signed file list (a record ledger
    withheld, a record missing or malformed) fails, naming what is missing; only a
    plain file may match a subject without one, by its own SHA-256.

    Raises:
        InputError: a file at ``path`` cannot be read.
    """
    name = f"artifact {path}"
    if not path.exists():
        return _nothing_at(path)
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

def check_vsa_artifact(subjects: Sequence[ResourceDescriptor], path: Path) -> Check:
    """``path`` is a VSA subject: its digest and, recomputed from the disk with the
    subject's signed serialization, the digest over its file names and digests. A
    subject without that file list cannot be checked by name and is refused.

    Raises:
        InputError: a file at ``path`` cannot be read.
    """
    name = f"artifact {path}"
    if not path.exists():
        return _nothing_at(path)
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
