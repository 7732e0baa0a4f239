"""Verification policy: requirements a verified bundle must meet, and how they combine.

A :class:`Requirement` looks at the :class:`~slsa_dist.verify._result.Evidence` of one
bundle (the statement whose signature verified, its records as far as they could be
read) and returns its checks. Requirements compose with :class:`AllOf` and
:class:`AnyOf`, as sigstore-python's ``verify/policy.py`` does::

    AllOf(BuilderId("https://slsa-dist.dev/builders/coordinator/v1"),
          Artifacts("checkpoints/final"), Complete(), Attestation("tpm"))

The contract (tested in ``tests/security/test_verify_fails_closed.py``):

1. A requirement that cannot be checked fails, naming what is missing (a record, the
   record ledger, a file list, a file on disk); it never passes with a warning.
2. Nothing passes vacuously: an empty :class:`AllOf` or :class:`AnyOf` fails, and so
   does a requirement that returns no check.
3. A requirement for a provenance fails on a Verification Summary Attestation and
   :class:`VsaSummary` fails on a provenance: each names what it found instead.
4. Only cryptographically verified evidence counts for :class:`Attestation` (``any``
   too); what a node reports of its own checks is shown as "reported by node X".
5. Objects are valid once made: a requirement with nothing to require (no builder id,
   no artifact, an unknown evidence kind) cannot be constructed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from slsa_dist.attest._reference import ReferenceValues
from slsa_dist.errors import InputError
from slsa_dist.model._ledger import LedgerError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import FileWritten
from slsa_dist.model._statement import BUILD_TYPE
from slsa_dist.verify._artifact import check_artifact, check_vsa_artifact
from slsa_dist.verify._attestation import (
    REQUIREMENTS,
    check_reference_kinds,
    require_attestation,
)
from slsa_dist.verify._result import Check, Evidence

__all__ = ["AllOf", "AnyOf", "Artifacts", "Attestation", "BuilderId", "ByKind", "Complete",
           "Outputs", "Rank", "ReferenceValues", "Requirement", "VsaSummary", "default_policy",
           "leaves", "reads_whole_ledger"]


@runtime_checkable
class Requirement(Protocol):
    """Something a verified bundle must meet: its checks, each passed or failed."""

    def check(self, evidence: Evidence) -> list[Check]:
        """The checks of ``evidence`` against this requirement (at least one)."""
        ...


def _run(requirement: Requirement, evidence: Evidence) -> list[Check]:
    checks = list(requirement.check(evidence))
    if not checks:  # a requirement that checked nothing passes nothing
        return [Check(type(requirement).__name__, False,
                      "expected the requirement to check something, found no check")]
    return checks


class AllOf:
    """Every requirement holds. Empty, it fails: a policy with nothing in it is no pass."""

    def __init__(self, *requirements: Requirement) -> None:
        for requirement in requirements:
            if not isinstance(requirement, Requirement):
                raise InputError(f"AllOf: expected requirements, found {requirement!r:.60}")
        self.requirements: tuple[Requirement, ...] = requirements

    def check(self, evidence: Evidence) -> list[Check]:
        if not self.requirements:
            return [Check("policy", False, "expected at least one requirement in AllOf, found "
                          "none: an empty policy passes nothing")]
        return [c for r in self.requirements for c in _run(r, evidence)]

    def __repr__(self) -> str:
        return f"AllOf({', '.join(map(repr, self.requirements))})"


class AnyOf:
    """At least one requirement holds (all its checks pass). Empty, it fails.

    Its outcome is one check naming what each alternative found, so an alternative
    that failed does not fail the whole when another passed."""

    def __init__(self, *requirements: Requirement) -> None:
        for requirement in requirements:
            if not isinstance(requirement, Requirement):
                raise InputError(f"AnyOf: expected requirements, found {requirement!r:.60}")
        self.requirements: tuple[Requirement, ...] = requirements

    def check(self, evidence: Evidence) -> list[Check]:
        if not self.requirements:
            return [Check("any of", False, "expected at least one requirement in AnyOf, found "
                          "none: an empty choice passes nothing")]
        outcomes = [_run(r, evidence) for r in self.requirements]
        passed = [checks for checks in outcomes if all(c.ok for c in checks)]
        shown = "; ".join(f"{'PASS' if all(c.ok for c in checks) else 'FAIL'} "
                          + ", ".join(f"{c.name}: {c.detail}" for c in checks)
                          for checks in outcomes)
        name = "any of " + ", ".join(dict.fromkeys(c.name for checks in outcomes
                                                   for c in checks))
        if passed:
            return [Check(name, True, f"{len(passed)} of {len(outcomes)} alternative(s) "
                          f"hold: {shown}")]
        return [Check(name, False, f"expected one of {len(outcomes)} alternative(s) to hold, "
                      f"found none: {shown}")]

    def __repr__(self) -> str:
        return f"AnyOf({', '.join(map(repr, self.requirements))})"


def _provenance(evidence: Evidence, name: str) -> Provenance | Check:
    """The provenance a provenance requirement needs, or the failed check saying a VSA
    was found instead."""
    if evidence.provenance is None:
        return Check(name, False, "expected a provenance bundle, found a Verification Summary "
                     "Attestation (a VSA carries no builder, ranks, nodes or evidence to check)")
    return evidence.provenance


def _records(evidence: Evidence, name: str, what: str) -> Check | None:
    """A failed check when the records a requirement needs cannot be read, else None."""
    if evidence.records_missing is None:
        return None
    return Check(name, False, f"expected {what}, found none that can be checked: "
                 f"{evidence.records_missing}")


@dataclass(frozen=True, init=False)
class BuilderId:
    """``builder.id`` is one of ``ids`` (what the SLSA level rests on)."""

    ids: tuple[str, ...]

    def __init__(self, *ids: str) -> None:
        if not ids or not all(ids):
            raise InputError(f"BuilderId: expected one or more builder ids, found {ids!r:.80}")
        object.__setattr__(self, "ids", ids)

    def check(self, evidence: Evidence) -> list[Check]:
        provenance = _provenance(evidence, "builder.id")
        if isinstance(provenance, Check):
            return [provenance]
        wanted = repr(self.ids[0]) if len(self.ids) == 1 else f"one of {list(self.ids)}"
        return [Check("builder.id", provenance.builder_id in self.ids,
                      f"expected {wanted}, found {provenance.builder_id!r}")]


@dataclass(frozen=True, init=False)
class Artifacts:
    """Each path (a file, or the folder a user would name) is a subject: by digest, and
    file by file by name against the subject's signed file list (a provenance's
    checkpoint record, a VSA subject's file annotation)."""

    paths: tuple[Path, ...]

    def __init__(self, *paths: str | os.PathLike[str]) -> None:
        if not paths:
            raise InputError("Artifacts: expected one or more paths, found none")
        object.__setattr__(self, "paths", tuple(Path(p) for p in paths))

    def check(self, evidence: Evidence) -> list[Check]:
        if evidence.provenance is None:
            subjects = evidence.statement.subjects
            return [check_vsa_artifact(subjects, path) for path in self.paths]
        checks = []
        for path in self.paths:
            check = check_artifact(evidence.provenance, path)
            if not check.ok and evidence.records_missing is not None \
                    and "ledger" not in check.detail:
                check = Check(check.name, False, f"{check.detail} (and the records: "
                              f"{evidence.records_missing})")
            checks.append(check)
        return checks


@dataclass(frozen=True)
class Complete:
    """Every rank of the job reported completing and the job recorded no gaps.

    Counted from the per-rank records (inline, or the record ledger read whole and
    held to the signed summary); a ledger withheld or failing its check fails this.
    With ``from_summary`` only the signed completeness record is asked (what
    ``verify --rank`` does, so as not to read a 65,536-rank ledger whole): said so in
    the check.
    """

    from_summary: bool = False
    # Capture gaps the job declared allowed (SLSA_ALLOW_CAPTURE_GAPS, the rank's own
    # environment) fail too unless the verifier allows them: the job does not decide.
    allow_capture_gaps: bool = False

    def check(self, evidence: Evidence) -> list[Check]:
        provenance = _provenance(evidence, "completeness")
        if isinstance(provenance, Check):
            return [provenance]
        world_size = provenance.world_size
        completeness = provenance.completeness()
        if world_size is None and completeness is None:
            if provenance.build_type == BUILD_TYPE:
                return [Check("completeness", False, "expected the world size and the "
                              "signed completeness record of a distributed job, found "
                              "neither")]
            return [Check("completeness", True, f"a single step ({provenance.build_type}): "
                          "no ranks, no completeness record to hold it to")]
        problems: list[str] = []
        if world_size is not None:
            if self.from_summary:
                if completeness is None:
                    return [Check("completeness", False, "expected the signed completeness "
                                  "record to say which ranks are missing, found none")]
                missing = list(completeness.missing_ranks)
            else:
                failed = _records(evidence, "completeness",
                                  "the per-rank records to count the ranks that completed")
                if failed is not None:
                    return [failed]
                if evidence.completed is None:
                    return [Check("completeness", False, "expected the per-rank records read "
                                  "whole to count the ranks that completed, found them read "
                                  "by inclusion proofs only (Complete(from_summary=True) "
                                  "asks the signed summary alone)")]
                missing = [r for r in range(world_size) if r not in evidence.completed]
            if missing:
                problems.append(f"ranks without a completed report: {_ranges(missing)}")
        if completeness is not None:
            problems.extend(f"{label}: {_summary(list(entries))}"
                            for label, entries in completeness.problems)
            if completeness.allowed_capture_gaps and not self.allow_capture_gaps:
                problems.append("capture gaps the job allowed (SLSA_ALLOW_CAPTURE_GAPS), "
                                "which this policy does not (--allow-capture-gaps): "
                                + _summary(list(completeness.allowed_capture_gaps)))
            if completeness.departed_nodes \
                    and "worldSizeRange" not in provenance.external_parameters:
                # A job whose world size is fixed has no node to lose: a later attempt
                # without one is another job's word for the ranks it ran (issue 25 F1).
                problems.append("nodes left a job whose world size is fixed: "
                                + _summary(list(completeness.departed_nodes)))
        if problems:
            return [Check("completeness", False, "; ".join(problems))]
        if world_size is None:
            return [Check("completeness", True, "no gaps recorded")]
        how = " (by the signed completeness record; the records were not read whole)" \
            if self.from_summary else ""
        return [Check("completeness", True, f"all {world_size} ranks reported{how}")]


@dataclass(frozen=True)
class Outputs:
    """The job recorded at least one output (otherwise its subject stands for the run)."""

    def check(self, evidence: Evidence) -> list[Check]:
        provenance = _provenance(evidence, "outputs")
        if isinstance(provenance, Check):
            return [provenance]
        completeness = provenance.completeness()
        recorded = bool(provenance.statement.subjects) and (
            completeness is None or completeness.outputs_recorded is not False)
        return [Check("outputs", recorded, "the job recorded its outputs as subjects"
                      if recorded else "expected at least one recorded output, found none "
                      "(the subject stands for the run itself)")]


@dataclass(frozen=True)
class Rank:
    """Rank ``rank``'s record is in the signed statement, or proven into its signed
    ledger by an inclusion proof, says it completed, and every file it wrote has a
    signed digest (its own, or its checkpoint record's).

    Raises (from :meth:`check`):
        InputError: the rank is outside the job's world size.
    """

    rank: int

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or self.rank < 0:
            raise InputError(f"Rank: expected a rank >= 0, found {self.rank!r}")

    def check(self, evidence: Evidence) -> list[Check]:
        name = f"rank {self.rank}"
        provenance = _provenance(evidence, name)
        if isinstance(provenance, Check):
            return [provenance]
        world = provenance.world_size
        if world is not None and self.rank >= world:
            raise InputError(f"rank: expected a rank in 0..{world - 1} (the job's world "
                             f"size is {world}), found {self.rank}")
        failed = _records(evidence, name, f"the record of rank {self.rank}")
        if failed is not None:
            return [failed]
        ledger = provenance.ledger()
        try:
            record = provenance.rank_record(self.rank)
            unlisted = _unlisted_files(provenance, record.files if record is not None else ())
        except LedgerError as exc:
            return [Check(name, False, str(exc))]
        if unlisted:
            return [Check(name, False, "expected every file the rank wrote to have a signed "
                          f"digest, found none for: {', '.join(unlisted)}")]
        if record is None:
            completeness = provenance.completeness()
            missing = completeness is not None and self.rank in completeness.missing_ranks
            why = " (the signed completeness record lists it as missing)" if missing else \
                " although the signed completeness record does not list it as missing" + (
                    " (a damaged ledger index?)" if ledger is not None else "")
            return [Check(name, False, f"expected a record for rank {self.rank}, found "
                          f"none{why}")]
        where = "by an inclusion proof into the signed ledger" if ledger is not None else \
            "inline in the signed statement"
        attempts = ", ".join(f"attempt {a.attempt} on {a.node}: {a.state}"
                             for a in record.attempts) or "no attempts"
        return [Check(name, record.completed,
                      f"{'completed' if record.completed else 'NOT completed'}; {attempts}; "
                      f"{record.shard_count} shard(s), {record.samples} sample(s), "
                      f"{len(record.files)} file(s) written; checked {where}")]


def _unlisted_files(provenance: Provenance, files: Iterable[FileWritten]) -> list[str]:
    """Files a rank names without a digest whose checkpoint record is absent or does not
    list them (a checkpoint line renamed away is no proof of absence)."""
    unlisted: list[str] = []
    listed: dict[str, set[str]] = {}
    for written in files:
        artifact, path = written.artifact, written.path
        if written.digest:
            continue
        if artifact not in listed:
            checkpoint = provenance.checkpoint(artifact)
            if checkpoint is None:
                unlisted.append(f"{artifact}/{path} (its digest is left to checkpoint "
                                f"{artifact!r}, found no such record)")
                listed[artifact] = set()
                continue
            listed[artifact] = {str(r.get("name")) for r in checkpoint.resources}
        if path not in listed[artifact]:
            unlisted.append(f"{artifact}/{path} (its digest is left to checkpoint "
                            f"{artifact!r}, which does not list it)")
    return unlisted


@dataclass(frozen=True)
class Attestation:
    """Every node the job ran on has cryptographically verified hardware evidence of
    ``kind`` (``any``: of some kind), re-appraised from the raw evidence in the bundle.
    With ``trusted_aks`` ((AK fingerprint, node id) pairs, ``slsa-dist tpm enroll``) TPM
    quotes count only from the AK enrolled for that node. With ``ek_roots`` (PEM
    certificates of TPM manufacturers' or the operator's EK CAs) TPM quotes count only
    when their AK was activated by an EK whose certificate chains to one of them. With
    ``tcb_statuses`` (``tdx`` and ``any`` only), TDX evidence counts only with one of
    them (``UpToDate`` ...; evidence carrying none does not). With ``reference_values``
    (:class:`ReferenceValues`), evidence counts only when the registers it proves (PCRs,
    MRTD and RTMRs, the SNP measurement, GPU measurements) hold the values they accept; a
    register they name that the evidence lacks fails. For ``tpm`` they need ``ek_roots``
    or ``trusted_aks``."""

    kind: str
    trusted_aks: frozenset[tuple[str, str]] | None = None
    tcb_statuses: frozenset[str] | None = None
    ek_roots: tuple[bytes, ...] = ()
    reference_values: ReferenceValues | None = None

    def __post_init__(self) -> None:
        if self.kind not in REQUIREMENTS:
            raise InputError(f"Attestation: expected one of {', '.join(REQUIREMENTS)}, found "
                             f"{self.kind!r}")
        if self.trusted_aks is not None and self.kind != "tpm":
            raise InputError(f"trusted AKs: expected them with a tpm requirement, found "
                             f"{self.kind!r}")
        if self.tcb_statuses is not None and self.kind not in ("tdx", "any"):
            raise InputError(f"TCB statuses: expected them with a tdx or any requirement (a "
                             f"TDX TCB status is what they narrow), found {self.kind!r}")
        check_reference_kinds(self.kind, self.reference_values, trusted_aks=self.trusted_aks,
                              ek_roots=self.ek_roots)

    def check(self, evidence: Evidence) -> list[Check]:
        name = f"attestation {self.kind}" + (" (trusted AKs)" if self.trusted_aks else "") \
            + (" (EK roots)" if self.ek_roots and self.kind in ("tpm", "any") else "") \
            + (" (reference values)" if self.reference_values is not None else "")
        provenance = _provenance(evidence, name)
        if isinstance(provenance, Check):
            return [provenance]
        failed = _records(evidence, name, "the node records that carry the evidence")
        if failed is not None:
            return [failed]
        try:
            return [require_attestation(provenance, self.kind, trusted_aks=self.trusted_aks,
                                        ek_roots=self.ek_roots,
                                        tcb_statuses=self.tcb_statuses,
                                        reference_values=self.reference_values)]
        except LedgerError as exc:
            return [Check(name, False, f"expected the node records, found: {exc}")]


@dataclass(frozen=True)
class VsaSummary:
    """A Verification Summary Attestation says PASSED, and (each when given) names this
    verifier, this resource, and this SLSA build level or higher. A field left None is
    not checked, and the result's notes say so."""

    verifier_id: str | None = None
    resource_uri: str | None = None
    verified_level: int | None = None

    def __post_init__(self) -> None:
        level = self.verified_level
        if level is not None and (isinstance(level, bool) or not 0 <= level <= 4):
            raise InputError(f"VsaSummary: expected a verified level 0..4, found {level!r}")

    def check(self, evidence: Evidence) -> list[Check]:
        if evidence.provenance is not None:
            return [Check("VSA", False, "expected a Verification Summary Attestation, found a "
                          "provenance")]
        predicate = evidence.statement.predicate
        verifier = (predicate.get("verifier") or {}).get("id")
        result = predicate.get("verificationResult")
        levels = predicate.get("verifiedLevels")
        checks = [Check("verificationResult", result == "PASSED",
                        f"expected 'PASSED', found {result!r} (verifier {verifier}, levels "
                        f"{levels})")]
        for field_name, wanted, found in (
                ("verifier.id", self.verifier_id, verifier),
                ("resourceUri", self.resource_uri, predicate.get("resourceUri"))):
            if wanted is not None:
                checks.append(Check(field_name, found == wanted,
                                    f"expected {wanted!r}, found {found!r}"))
        if self.verified_level is not None:
            granted = [int(v.rsplit("_", 1)[1]) for v in levels or []
                       if isinstance(v, str) and v.startswith("SLSA_BUILD_LEVEL_")
                       and v.rsplit("_", 1)[1].isdigit()]
            checks.append(Check("verifiedLevels",
                                any(g >= self.verified_level for g in granted),
                                f"expected SLSA_BUILD_LEVEL_{self.verified_level} or higher, "
                                f"found {levels}"))
        return checks


@dataclass(frozen=True)
class ByKind:
    """One requirement for a provenance, another for a Verification Summary Attestation:
    the bundle's kind picks (what ``slsa-dist verify`` builds from its flags)."""

    provenance: Requirement
    vsa: Requirement

    def check(self, evidence: Evidence) -> list[Check]:
        return _run(self.vsa if evidence.is_vsa else self.provenance, evidence)


def default_policy(evidence: Evidence) -> Requirement:
    """What a bundle is held to when nobody says more: a provenance is complete
    (:class:`Complete`); a VSA says PASSED (:class:`VsaSummary`)."""
    return VsaSummary() if evidence.is_vsa else Complete()


def leaves(requirement: Requirement) -> Iterator[Requirement]:
    """The requirements inside ``requirement``, through :class:`AllOf` and :class:`AnyOf`."""
    if isinstance(requirement, (AllOf, AnyOf)):
        for inner in requirement.requirements:
            yield from leaves(inner)
    elif isinstance(requirement, ByKind):
        yield from leaves(requirement.provenance)
        yield from leaves(requirement.vsa)
    else:
        yield requirement


def reads_whole_ledger(requirement: Requirement) -> bool:
    """Whether checking ``requirement`` needs a record ledger read whole (counting ranks,
    every node's evidence), rather than the few records it asks for, each by an
    inclusion proof. A requirement this module does not know reads it whole."""
    light = (BuilderId, Artifacts, Outputs, Rank, VsaSummary)
    return any(not isinstance(r, light) and not (isinstance(r, Complete) and r.from_summary)
               for r in leaves(requirement))


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

