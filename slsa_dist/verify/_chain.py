"""Follow a model back through every step that made it: ``slsa-dist verify --chain``.

From a final artifact's digest, find the provenance that produced it in an
attestation store, verify it against the policy's trusted keys for its build
type, then follow each input model and dataset in ``resolvedDependencies`` to
the provenance that produced *it*, to the policy's maximum depth. Every gap
is reported: a dependency with no provenance (unless the policy allows that
digest as a root), a step signed by a key the policy does not trust for its
build type, a builder id it does not allow, missing required attestation, an
incomplete job.

Policy file (JSON, or YAML when PyYAML is installed)::

    {
      "version": 1,
      "maxDepth": 8,
      "steps": [
        {"buildType": "https://slsa-dist.dev/buildtypes/distributed-training/v1",
         "keys": ["keys/signing.pub"],
         "builderIds": ["https://slsa-dist.dev/builders/coordinator/v1"],
         "requireAttestation": "tpm",
         "trustedAks": ["sha256:<fingerprint> <node id>  (a line of slsa-dist tpm enroll)"],
         "slsaBuildLevel": 2},
        {"buildType": "https://slsa-dist.dev/buildtypes/step/v1",
         "keys": ["keys/signing.pub"], "slsaBuildLevel": 1}
      ],
      "allowedDatasets": ["<sha256 of a raw dataset that has no provenance>"],
      "allowedModels": [],
      "allowedInputs": ["<sha256 of any other input, e.g. a file a script read>"]
    }

Every recorded input with a digest is followed (any kind but ``code`` and
``package``: a ``model``, a ``dataset`` shard, an ``input`` zero-code capture saw
read, a checkpoint a resumed run loaded) to the step whose *verified* statement
names it, or it is a gap unless its sha256 is in one of the ``allowed`` lists
(the three are one set; the names say why a digest is there). An input without
a sha256 digest cannot be looked up and is a gap.

A key the policy does not know, at the top or in a step, is refused (a misspelt
``requireAttestation`` would otherwise be a requirement nobody checks).
Key paths are relative to the policy file. ``builderIds``,
``requireAttestation`` and ``trustedAks`` (only with ``requireAttestation:
tpm``: a node's quotes count only from the attestation key enrolled for that
node) are optional;
``slsaBuildLevel`` is what the verifier grants that build type (it goes
into the VSA).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slsa_dist.digest._manifest import digest_path
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import ResourceDescriptor, Statement, job_id_of
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Verifier
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._artifact import check_artifact
from slsa_dist.verify._bundle import check_bundle
from slsa_dist.verify._policy import AllOf, Attestation, BuilderId, Complete, Requirement
from slsa_dist.verify._result import Check
from slsa_dist.verify._store import Store, checkpoint_roots

__all__ = ["UNFOLLOWED_KINDS", "ChainPolicy", "ChainResult", "Gap", "Step", "StepRule",
           "artifact_digest", "dependency_key", "verify_chain"]

# Dependencies that are no build's output: the code that ran and the packages it
# imported (named by commit or package URL). Every other input with a digest (a model,
# a dataset shard, a file zero-code capture saw read, a checkpoint a run resumed from)
# is followed to the step that produced it, or is a gap the policy must allow.
UNFOLLOWED_KINDS = frozenset({"code", "package"})


@dataclass(frozen=True)
class StepRule:
    build_type: str
    keys: tuple[Verifier, ...]
    builder_ids: tuple[str, ...] = ()
    require_attestation: str | None = None
    trusted_aks: frozenset[tuple[str, str]] | None = None
    level: int = 1

    def requirement(self) -> Requirement:
        """What a step of this build type must meet, beyond its signature."""
        wanted: list[Requirement] = [Complete()]
        if self.builder_ids:
            wanted.append(BuilderId(*self.builder_ids))
        if self.require_attestation:
            wanted.append(Attestation(self.require_attestation, trusted_aks=self.trusted_aks))
        return AllOf(*wanted)


@dataclass(frozen=True)
class ChainPolicy:
    rules: tuple[StepRule, ...]
    allowed: frozenset[str] = frozenset()
    max_depth: int = 8
    source: Path | None = None
    digest: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChainPolicy:
        """Read a policy file. Raises :class:`InputError` naming what is wrong."""
        file = Path(path)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise InputError(f"policy: expected a file at {file}, found none") from None
        data: Any
        if file.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError("policy: YAML needs PyYAML (pip install pyyaml); "
                                 "or write the policy as JSON") from None
            data = yaml.safe_load(raw)
        else:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise InputError(f"policy {file}: expected JSON, found {exc}") from None
        if not isinstance(data, dict) or data.get("version") != 1:
            raise InputError(f"policy {file}: expected an object with \"version\": 1, found "
                             f"{data.get('version') if isinstance(data, dict) else data!r:.40}")
        _known(data, _POLICY_KEYS, f"policy {file}")
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise InputError(f"policy {file}: expected a non-empty \"steps\" list")
        rules = []
        for index, step in enumerate(steps):
            if not isinstance(step, dict) or not step.get("buildType") or not step.get("keys"):
                raise InputError(f"policy {file}: steps[{index}]: expected buildType and keys")
            _known(step, _STEP_KEYS, f"policy {file}: steps[{index}]")
            trusted_aks = None
            if "trustedAks" in step:
                trusted_aks = _trusted_aks(step["trustedAks"], step.get("requireAttestation"),
                                           f"policy {file}: steps[{index}].trustedAks")
            rules.append(StepRule(
                build_type=str(step["buildType"]),
                keys=tuple(load_verifier(file.parent / k) for k in step["keys"]),
                builder_ids=tuple(step.get("builderIds") or ()),
                require_attestation=step.get("requireAttestation"),
                trusted_aks=trusted_aks,
                level=int(step.get("slsaBuildLevel", 1))))
        allowed = frozenset(str(d) for d in [*(data.get("allowedDatasets") or []),
                                             *(data.get("allowedModels") or []),
                                             *(data.get("allowedInputs") or [])])
        return cls(rules=tuple(rules), allowed=allowed, max_depth=int(data.get("maxDepth", 8)),
                   source=file, digest=hashlib.sha256(raw).hexdigest())

    def rule_for(self, build_type: str | None) -> StepRule | None:
        return next((r for r in self.rules if r.build_type == build_type), None)


# The keys a policy file may hold: one it does not know is refused, since a misspelt
# requirement ("requireAttestaton") would otherwise be a requirement nobody checks.
_POLICY_KEYS = ("version", "maxDepth", "steps", "allowedDatasets", "allowedModels",
                "allowedInputs")
_STEP_KEYS = ("buildType", "keys", "builderIds", "requireAttestation", "trustedAks",
              "slsaBuildLevel")


def _known(data: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise InputError(f"{where}: expected only {', '.join(keys)}, found unknown key(s) "
                         f"{', '.join(map(repr, unknown))}")


def _trusted_aks(value: Any, requirement: Any, where: str) -> frozenset[tuple[str, str]]:
    if requirement != "tpm":
        raise InputError(f"{where}: expected it with \"requireAttestation\": \"tpm\", found "
                         f"{requirement!r}")
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: expected a non-empty list of 'sha256:<hex> NODE-ID', found "
                         f"{value!r:.60}")
    from slsa_dist.attest._tpm import trusted_ak_entry

    return frozenset(trusted_ak_entry(str(entry), where) for entry in value)


@dataclass
class Step:
    """A verified provenance in the chain."""

    bundle: Path
    provenance: Provenance
    depth: int
    level: int
    checks: list[Check]
    inputs: list[tuple[ResourceDescriptor, str]] = field(default_factory=list)  # (dep, state)
    # the bundle file's digest when it was verified: a store's copy may not outlive the walk
    bundle_sha256: str = ""

    @property
    def name(self) -> str:
        return self.provenance.job_id or self.bundle.name


@dataclass(frozen=True)
class Gap:
    digest: str
    name: str
    consumer: str
    reason: str


@dataclass
class ChainResult:
    root: str
    name: str
    steps: dict[str, Step] = field(default_factory=dict)  # produced digest -> step
    gaps: list[Gap] = field(default_factory=list)
    allowed_roots: list[tuple[str, str]] = field(default_factory=list)  # (digest, name)
    # where a step's bundle lives, when its store knows (a registry referrer's oci:// URI)
    origins: dict[Path, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.gaps and self.root in self.steps

    def unique_steps(self) -> list[Step]:
        seen: dict[int, Step] = {}
        for step in self.steps.values():
            seen.setdefault(id(step), step)
        return sorted(seen.values(), key=lambda s: (s.depth, s.name))

    def lines(self) -> Iterator[str]:
        """A readable graph: each artifact, the step that made it, and its inputs."""
        printed: set[int] = set()

        def walk(digest: str, label: str, indent: int) -> Iterator[str]:
            pad = "  " * indent
            step = self.steps.get(digest)
            if step is None:
                gap = next((g for g in self.gaps if g.digest == digest), None)
                if gap is not None:
                    yield (f"{pad}GAP  {label} sha256:{digest[:16]} (input of {gap.consumer}): "
                           f"{gap.reason}")
                elif any(d == digest for d, _ in self.allowed_roots):
                    yield f"{pad}root {label} sha256:{digest[:16]}: allowed by policy " \
                          "(no provenance required)"
                return
            yield (f"{pad}{label} sha256:{digest[:16]} <- {step.name} "
                   f"({step.provenance.build_type}, level {step.level}, verified)")
            if id(step) in printed:
                yield f"{pad}  (inputs shown above)"
                return
            printed.add(id(step))
            for dependency, _ in step.inputs:
                kind = dependency.annotations.get("slsadist_kind", "input")
                yield from walk(dependency_key(dependency),
                                f"{kind} {dependency.name or dependency.uri}", indent + 1)

        yield from walk(self.root, self.name, 0)
        for gap in self.gaps:
            if gap.digest == self.root or gap.consumer == "(policy)":
                yield f"GAP  {gap.name}: {gap.reason}"


def artifact_digest(path: str | os.PathLike[str]) -> str:
    """The digest slsa-dist names an artifact by: a file's SHA-256, a directory's OMS root."""
    return digest_path(path).identity


def _statements(bundle: Path) -> list[Statement]:
    found = []
    for envelope in read_bundle(bundle):
        try:
            found.append(Statement.from_dict(json.loads(envelope.payload)))
        except (ValueError, InputError):
            continue
    return found


def verify_chain(root: str, *, name: str, store: Store, policy: ChainPolicy,
                 artifact: str | os.PathLike[str] | None = None) -> ChainResult:
    """Walk and verify the chain that produced ``root``.

    Every input of every verified step with a digest, of any kind but code and
    packages, is followed to the step that produced it or is a gap (unless the policy
    allows its digest). With ``artifact`` (the file or folder ``root`` is the digest
    of), the artifact must also be the files the producing step's signed record names:
    the OMS root leaves names out.
    """
    result = ChainResult(root=root, name=name)
    origin = getattr(store, "origin", None)  # a registry store names its bundles' homes
    pending: list[tuple[str, str, str, int]] = [(root, name, "(requested artifact)", 0)]
    visited: set[str] = set()
    by_bundle: dict[Path, Step] = {}  # one step per bundle, however many digests it produced
    named: dict[Path, set[str]] = {}  # what each verified step's statement names
    while pending:
        digest, label, consumer, depth = pending.pop(0)
        if digest in visited:
            continue
        visited.add(digest)
        if digest != root and digest in policy.allowed:
            result.allowed_roots.append((digest, label))
            continue
        if depth > policy.max_depth:
            result.gaps.append(Gap(digest, label, consumer,
                                   f"deeper than the policy's maxDepth {policy.max_depth}"))
            continue
        # Another output of a step already verified and followed: the index only
        # proposes it, so it counts when that step's verified statement names the digest
        # (one extra index line must not lend a verified step to any digest).
        known = next((by_bundle[b] for b in store.find(digest)
                      if b in by_bundle and digest in named[b]),
                     None)
        if known is not None:
            result.steps[digest] = known
            continue
        step, reason = _producer(digest, store, policy, depth)
        if step is None:
            result.gaps.append(Gap(digest, label, consumer, reason))
            continue
        result.steps[digest] = step
        by_bundle[step.bundle] = step
        named[step.bundle] = _named_digests(step.provenance)
        for dependency in step.provenance.dependencies:
            kind = str(dependency.annotations.get("slsadist_kind") or "input")
            if kind in UNFOLLOWED_KINDS:
                continue
            step.inputs.append((dependency, "followed"))
            label = f"{kind} {dependency.name or dependency.uri}"
            sha = dependency.digest.get("sha256")
            if sha and sha in named[step.bundle]:
                # An input that is this very step's output proves nothing about where it
                # came from: a job that names what it read as what it wrote.
                result.gaps.append(Gap(sha, label, step.name, "the step names this input as "
                                       "its own output too: no provenance for it"))
                continue
            if sha:
                pending.append((sha, label, step.name, depth + 1))
                continue
            key = dependency_key(dependency)
            if key not in visited:
                visited.add(key)
                found = ", ".join(sorted(dependency.digest)) or "no digest"
                result.gaps.append(Gap(key, label, step.name, "expected a sha256 digest to "
                                       f"follow to the step that produced it, found {found}"))
    if artifact is not None:
        _check_root_artifact(result, Path(artifact))
    if origin is not None:
        for step in result.unique_steps():
            home = origin(step.bundle)
            if home:
                result.origins[step.bundle] = home
    return result


def dependency_key(dependency: ResourceDescriptor) -> str:
    """What a dependency is known by in a chain: its sha256, else another digest, else
    its name or URI (those without a sha256 are gaps, keyed by this)."""
    if "sha256" in dependency.digest:
        return dependency.digest["sha256"]
    if dependency.digest:
        return ":".join(sorted(dependency.digest.items())[0])
    return f"uri:{dependency.uri or dependency.name or '?'}"


def _check_root_artifact(result: ChainResult, artifact: Path) -> None:
    """The requested folder (or one file of a checkpoint) is, name by name, what the step
    that produced it signed: the digest found the step, the names must agree too."""
    step = result.steps.get(result.root)
    if step is None or not artifact.exists():
        return
    # A file whose digest is the root of a multi-file checkpoint is no checkpoint: 64
    # bytes holding the files' digests reproduce the root. Held to the record by name
    # too (and so refused), as a folder or a subject is.
    checkpoints = step.provenance.checkpoints()
    roots = {root for c in checkpoints for root in checkpoint_roots(c)}
    files = {str(r.get("digest")) for c in checkpoints for r in c.resources}
    if artifact.is_dir() or result.root in {s.digest.get("sha256")
                                            for s in step.provenance.statement.subjects} \
            or (result.root in roots and result.root not in files):
        check = check_artifact(step.provenance, artifact)
        if not check.ok:
            result.gaps.append(Gap(result.root, result.name, "(requested artifact)",
                                   check.detail))


def _producer(digest: str, store: Store, policy: ChainPolicy,
              depth: int) -> tuple[Step | None, str]:
    """The verified step that produced ``digest``, or why there is none.

    The store only proposes candidates. A candidate counts when an envelope in it
    verifies with the keys of a policy rule, the *verified* statement's buildType is
    that rule's (rules are tried in policy order, so no hash seed decides), and the
    verified statement names ``digest``: as a subject, or as a file of a verified
    checkpoint record.
    """
    candidates = store.find(digest)
    if not candidates:
        return None, "no provenance in the store produced this digest"
    reasons = []
    for bundle in candidates:
        provenance, checks, sha256, why = _verified_for_rule(bundle, policy)
        if provenance is None:
            reasons.append(why)
            continue
        rule = policy.rule_for(provenance.build_type)
        assert rule is not None  # _verified_for_rule matched it
        if digest not in _named_digests(provenance):
            reasons.append(f"step {provenance.job_id}: the verified statement does not "
                           f"name this digest (the store's index claimed it)")
            continue
        failed_checks = [c for c in checks if not c.ok]
        if failed_checks:
            reasons.append(f"step {provenance.job_id}: " + "; ".join(
                f"{c.name}: {c.detail}" for c in failed_checks))
            continue
        return Step(bundle=bundle, provenance=provenance, depth=depth, level=rule.level,
                    checks=checks, bundle_sha256=sha256), ""
    return None, " | ".join(reasons)


def _verified_for_rule(bundle: Path, policy: ChainPolicy
                       ) -> tuple[Provenance | None, list[Check], str, str]:
    """The provenance in ``bundle`` signed by a key its own buildType's rule trusts, its
    checks against that rule's requirements (complete, builder id, attestation), and the
    SHA-256 of the very bytes verified (a file replaced since is not what was checked)."""
    failures = []
    for rule in policy.rules:
        result = check_bundle(bundle, keys=list(rule.keys), policy=rule.requirement())
        provenance = result.provenance
        if provenance is not None and provenance.build_type == rule.build_type:
            return provenance, list(result.checks), result.sha256, ""
        if provenance is not None:
            continue  # signed by this rule's key, but for another build type
        failures.append("; ".join(c.detail for c in result.checks if not c.ok))
    statements = _statements(bundle)
    names = ", ".join(sorted({job_id_of(str(s.predicate.get("runDetails", {})
                                            .get("metadata", {}).get("invocationId")))
                              for s in statements}))
    types = ", ".join(sorted({str(s.predicate.get("buildDefinition", {}).get("buildType"))
                              for s in statements}))
    return None, [], "", (f"step {names} (name as claimed, unverified) is signed by a key not "
                      f"trusted for its build type ({types}): "
                      + " | ".join(dict.fromkeys(failures)))


def _named_digests(provenance: Provenance) -> set[str]:
    """Every SHA-256 the verified statement says it produced."""
    named = {s.digest["sha256"] for s in provenance.statement.subjects if "sha256" in s.digest}
    for checkpoint in provenance.checkpoints():
        if checkpoint.serialization.get("hash_type") == "sha256":
            named.update(str(r.get("digest")) for r in checkpoint.resources)
        named.update(checkpoint_roots(checkpoint))
    return named



def levels(result: ChainResult) -> tuple[int, dict[str, int]]:
    """The SLSA VSA levels of a chain: (the root artifact's own step level, counts of
    dependency *artifacts* by the level of the step that produced each).

    Per the VSA spec, ``verifiedLevels`` is the artifact's own producing step, not the
    lowest anywhere in the chain, and ``dependencyLevels`` counts the dependencies;
    one the policy allows without provenance counts as ``SLSA_BUILD_LEVEL_0``.
    """
    root_step = result.steps.get(result.root)
    counts: dict[str, int] = {}
    for digest, step in result.steps.items():
        if digest == result.root:
            continue
        key = f"SLSA_BUILD_LEVEL_{step.level}"
        counts[key] = counts.get(key, 0) + 1
    if result.allowed_roots:
        counts["SLSA_BUILD_LEVEL_0"] = len({d for d, _ in result.allowed_roots})
    return (root_step.level if root_step is not None else 0), counts
