"""Verify one bundle: its signature, then every requirement of a policy -> a :class:`Result`.

:func:`check_bundle` returns the :class:`~slsa_dist.verify._result.Result` of every
check, passed or not; :func:`verify_bundle` returns it when every check passed and
raises :class:`VerificationFailed` (carrying it) otherwise. The envelope's exact
payload bytes are verified before anything parses them; a record ledger the statement
binds is read beside the bundle, whole (against its signed digest, Merkle root and
counts) or, when no requirement needs more, one record at a time by inclusion proofs.
What the requirements are is :mod:`slsa_dist.verify._policy`'s.

>>> # verify_bundle("job.intoto.jsonl", keys=[load_verifier("signing.pub")],
>>> #               policy=AllOf(Artifacts("checkpoints/final"), Complete()))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
)
from slsa_dist.model._statement import PREDICATE_TYPE, Statement
from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, verify_envelope
from slsa_dist.sign._formats import parse_bundle, read_bundle_bytes
from slsa_dist.sign._keys import Verifier
from slsa_dist.verify._artifact import FILES_ANNOTATION, VSA_PREDICATE_TYPE
from slsa_dist.verify._policy import (
    BuilderId,
    Outputs,
    Requirement,
    VsaSummary,
    default_policy,
    leaves,
    reads_whole_ledger,
)
from slsa_dist.verify._result import Check, Evidence, Result, VerificationFailed

__all__ = ["FILES_ANNOTATION", "VSA_PREDICATE_TYPE", "Check", "Result", "VerificationFailed",
           "check_bundle", "verify_bundle"]


@dataclass
class _Records:
    """What could be read of the records a statement binds beyond itself."""

    provenance: Provenance
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: str | None = None
    read: bool = False
    completed: frozenset[int] | None = None


def _read_records(provenance: Provenance, bundle: Path, *, whole: bool) -> _Records:
    """The provenance with its record ledger attached, the ledger read whole (line by
    line against its signed digest, Merkle root and counts) when ``whole``; or, for
    records inline, the ranks they say completed. A ledger withheld or failing its
    check leaves ``missing`` saying so: every requirement that needs it fails."""
    ledger = provenance.ledger()
    if ledger is None:
        return _Records(provenance, completed=frozenset(
            r.rank for r in provenance.rank_records() if r.completed))
    path = ledger.locate(bundle)
    if not path.exists():
        return _Records(provenance, missing=(
            f"the record ledger {path.name} is not beside the bundle (withheld?): its "
            f"{ledger.count} per-rank, per-node and per-checkpoint records cannot be checked"))
    attached = provenance.with_records(LedgerRecords(path, ledger))
    if not whole:
        return _Records(attached, notes=[
            f"record ledger {path.name} not read in full (--rank): only the records asked "
            "for were checked, each by an inclusion proof"])
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
    except (LedgerError, InputError) as exc:
        return _failed_ledger(provenance, path.name, str(exc))
    summary = ledger.summary
    expected = {"ranks": ranks, "completedRanks": len(completed), "nodes": nodes}
    differs = {k: (summary.get(k), v) for k, v in expected.items()
               if k in summary and summary.get(k) != v}
    if differs:
        return _failed_ledger(provenance, path.name, (
            "expected the signed summary to match the ledger, found " + ", ".join(
                f"{k} {a} signed vs {b} in the ledger" for k, (a, b) in differs.items())))
    return _Records(attached, read=True, completed=frozenset(completed), checks=[
        Check("ledger", True, f"{path.name}: {ledger.count} record(s), sha256 and Merkle root "
              f"{ledger.merkle_root[:16]}... as signed")])


def _failed_ledger(provenance: Provenance, name: str, why: str) -> _Records:
    return _Records(provenance, checks=[Check("ledger", False, why)],
                    missing=f"the record ledger {name} fails its check ({why})")


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


def _open(envelopes: Sequence[Envelope], keys: Sequence[Verifier], bundle: Path
          ) -> tuple[list[Check], Statement | None]:
    """The signature and statement checks, and the statement when both passed."""
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
        return [Check("signature", False, "; ".join(errors) or
                      f"expected a signed envelope in {bundle.name}, found none")], None
    signed = Check("signature", True, f"DSSE signature by a trusted key over {len(payload)} "
                   "bytes")
    try:
        statement = Statement.from_dict(json.loads(payload))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [signed, Check("statement", False, "expected a JSON in-toto Statement, found "
                              f"malformed JSON ({exc})")], None
    except InputError as exc:
        return [signed, Check("statement", False, str(exc))], None
    if statement.predicate_type not in (PREDICATE_TYPE, VSA_PREDICATE_TYPE):
        return [signed, Check("predicateType", False, f"expected {PREDICATE_TYPE!r} or "
                              f"{VSA_PREDICATE_TYPE!r}, found {statement.predicate_type!r}")], None
    return [signed], statement


def check_bundle(
    bundle: str | os.PathLike[str],
    *,
    keys: Sequence[Verifier],
    policy: Requirement | None = None,
    read_ledger_whole: bool | None = None,
) -> Result:
    """Every check of ``bundle`` against ``policy``, passed or not.

    First the signature (over the exact payload bytes) and the statement; a provenance
    then has its record ledger read, and ``policy`` is checked against what verified.
    ``policy`` None is :func:`~slsa_dist.verify._policy.default_policy` (a provenance is
    complete; a VSA says PASSED). The ledger is read whole unless no requirement needs
    it whole (``read_ledger_whole`` overrides). The result's notes say what no
    requirement asked for (an unpinned builder id, a VSA's verifier left unchecked).

    Raises:
        InputError: the bundle or an artifact cannot be read, or a requirement that
            does not fit the bundle (a rank outside the job).
    """
    path = Path(bundle)
    raw = read_bundle_bytes(path)  # one read: what is checked is what the digest names
    sha256 = hashlib.sha256(raw).hexdigest()
    checks, statement = _open(parse_bundle(raw, path), keys, path)
    if statement is None:
        return Result(bundle=path, checks=tuple(checks), sha256=sha256)
    if statement.predicate_type == VSA_PREDICATE_TYPE:
        evidence = Evidence(bundle=path, statement=statement)
        checks.append(Check("predicateType", True, VSA_PREDICATE_TYPE))
        chosen = policy if policy is not None else default_policy(evidence)
        checks.extend(_evaluate(chosen, evidence))
        return Result(bundle=path, checks=tuple(checks), statement=statement,
                      notes=tuple(_vsa_notes(chosen, statement)), sha256=sha256)
    try:
        provenance = Provenance.from_statement(statement)
    except InputError as exc:
        checks.append(Check("predicate", False, str(exc)))
        return Result(bundle=path, checks=tuple(checks), sha256=sha256)
    checks.append(Check("predicateType", True, PREDICATE_TYPE))
    chosen = policy if policy is not None else default_policy(
        Evidence(bundle=path, statement=statement, provenance=provenance))
    whole = reads_whole_ledger(chosen) if read_ledger_whole is None else read_ledger_whole
    records = _read_records(provenance, path, whole=whole)
    checks.extend(records.checks)
    evidence = Evidence(bundle=path, statement=statement, provenance=records.provenance,
                        records_missing=records.missing, ledger_read=records.read,
                        completed=records.completed)
    checks.extend(_evaluate(chosen, evidence))
    notes = [*records.notes, *_provenance_notes(chosen, records, checks)]
    return Result(bundle=path, checks=tuple(checks), provenance=records.provenance,
                  statement=statement, notes=tuple(notes), sha256=sha256)


def _evaluate(policy: Requirement, evidence: Evidence) -> list[Check]:
    checks = list(policy.check(evidence))
    if not checks:  # a policy that checked nothing passes nothing
        return [Check("policy", False, "expected the policy to check something, found no "
                      "check")]
    return checks


def _provenance_notes(policy: Requirement, records: _Records,
                      checks: Sequence[Check]) -> list[str]:
    """What no requirement asked of a provenance, said rather than passed over."""
    provenance = records.provenance
    notes = []
    required = list(leaves(policy))
    if not any(isinstance(r, BuilderId) for r in required):
        notes.append(f"builder.id not checked (the provenance says {provenance.builder_id!r}); "
                     "require it (BuilderId, --builder-id)")
    if records.missing is not None and not any(records.missing in c.detail or c.name == "ledger"
                                               for c in checks if not c.ok):
        notes.append(f"{records.missing}; no requirement of this policy needed them")
    completeness = provenance.completeness()
    if completeness is not None and completeness.departed_nodes:
        notes.append("nodes left the job before its final attempt (their part is recorded up "
                     "to then): " + "; ".join(completeness.departed_nodes))
    if completeness is not None and completeness.outputs_recorded is False \
            and not any(isinstance(r, Outputs) for r in required):
        notes.append("no outputs recorded: the job saved nothing slsa-dist saw, so its "
                     "subject stands for the run itself (require Outputs, --require-outputs, "
                     "to fail on this)")
    return notes


def _vsa_notes(policy: Requirement, statement: Statement) -> list[str]:
    wanted = [r for r in leaves(policy) if isinstance(r, VsaSummary)]
    predicate = statement.predicate
    notes = []
    for field_name, attribute, flag, found in (
            ("verifier.id", "verifier_id", "--verifier-id",
             (predicate.get("verifier") or {}).get("id")),
            ("resourceUri", "resource_uri", "--resource-uri", predicate.get("resourceUri"))):
        if not any(getattr(r, attribute) is not None for r in wanted):
            notes.append(f"{field_name} not checked (the VSA says {found!r}); pass {flag}")
    return notes


def verify_bundle(
    bundle: str | os.PathLike[str],
    *,
    keys: Sequence[Verifier],
    policy: Requirement | None = None,
) -> Result:
    """Verify ``bundle`` against ``policy`` (None: the default, see :func:`check_bundle`).

    Returns:
        The :class:`Result`, every check passed; ``.provenance`` is the verified
        provenance (None for a VSA).

    Raises:
        VerificationFailed: any check failed (``.checks`` lists them all, ``.result``
            is the whole :class:`Result`).
        InputError: the bundle or an artifact cannot be read.
    """
    result = check_bundle(bundle, keys=keys, policy=policy)
    if not result.ok:
        raise VerificationFailed(result.checks, result)
    return result
