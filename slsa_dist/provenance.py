"""The in-toto Statement v1 with a SLSA Provenance v1 predicate for training jobs.

Where each field goes is specified in ``docs/buildtype.md``. In short:

* ``subject``: the final artifacts; a checkpoint directory is ONE subject whose
  ``sha256`` is its OMS manifest root, with the per-file list in a byproduct;
* ``externalParameters``: what the user chose (entry point, arguments, world size);
* ``internalParameters``: what the platform chose (launcher, rendezvous, restarts);
* ``resolvedDependencies``: code, images, packages, dataset shards, input models,
  deduplicated by digest;
* ``byproducts``: per-rank, per-node and per-checkpoint records and a
  completeness record (missing ranks, missing files, failed evidence).

Output is canonical JSON (sorted keys, integers stay integers).

>>> b = ProvenanceBuilder(builder_id="https://example.com/builder", invocation_id="job-1")
>>> b.add_subject(ResourceDescriptor(name="model", digest={"sha256": "ab" * 32}))
>>> b.build().predicate_type
'https://slsa.dev/provenance/v1'
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from slsa_dist._internal import canonical
from slsa_dist.digest import Manifest
from slsa_dist.errors import InputError
from slsa_dist.records import Checkpoint, Completeness, NodeRecord, RankRecord, resolve_inputs
from slsa_dist.sign.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, sign_envelope
from slsa_dist.sign.keys import Signer

if TYPE_CHECKING:
    from slsa_dist.ledger import Ledger

__all__ = [
    "BUILDER_IDS",
    "BUILD_TYPE",
    "DEFAULT_BUILDER_ID",
    "MEDIA_CHECKPOINT",
    "MEDIA_COMPLETENESS",
    "MEDIA_INPUT",
    "MEDIA_NODE",
    "MEDIA_RANK",
    "PREDICATE_TYPE",
    "REDACTED",
    "STATEMENT_TYPE",
    "Provenance",
    "ProvenanceBuilder",
    "ResourceDescriptor",
    "Statement",
    "artifact_descriptors",
    "check_digest",
    "checkpoint_record",
    "format_timestamp",
    "input_descriptor",
    "invocation_id",
    "job_id_of",
    "record_descriptor",
    "redact_arguments",
    "redact_parameters",
    "redact_text",
    "redact_url",
    "secret_name",
    "sign_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://slsa-dist.dev/buildtypes/distributed-training/v1"
# One builder.id per deployment mode: SLSA makes builder.id the sole determiner of the
# level a consumer grants, and each mode isolates differently (docs/builder.md).
BUILDER_IDS = {
    "local": "https://slsa-dist.dev/builders/local/v1",
    "slurm": "https://slsa-dist.dev/builders/slurm/v1",
    "kubernetes": "https://slsa-dist.dev/builders/kubernetes/v1",
    "ray": "https://slsa-dist.dev/builders/ray/v1",
}
DEFAULT_BUILDER_ID = BUILDER_IDS["local"]  # a coordinator nobody told where it runs

MEDIA_RANK = "application/vnd.slsa-dist.rank.v1+json"
MEDIA_NODE = "application/vnd.slsa-dist.node.v1+json"
MEDIA_CHECKPOINT = "application/vnd.slsa-dist.checkpoint.v1+json"
MEDIA_COMPLETENESS = "application/vnd.slsa-dist.completeness.v1+json"
# A shard any rank read, once, in a record ledger (rank records there refer to it).
MEDIA_INPUT = "application/vnd.slsa-dist.input.v1+json"
# The records a ledger may hold, by the kind their names start with (slsa_dist.ledger).
_LEDGER_KINDS = {MEDIA_RANK: "rank", MEDIA_NODE: "node", MEDIA_CHECKPOINT: "checkpoint",
                 MEDIA_INPUT: "input"}

# Digest encodings we can check; other algorithms are carried but not validated
# (in-toto: consumers ignore algorithms they do not know).
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "blake3": 64, "sha1": 40}
_HEX = re.compile(r"^[0-9a-f]+$")
# Dependency kinds that say only that something was read, not what it is.
_GENERIC_KINDS = frozenset({"input", "other"})
_RUN_SUFFIX = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ALGORITHM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def invocation_id(job_id: str, run_id: str) -> str:
    """A globally unique ``invocationId``: the job id people know, and this run's UUID
    (a rerun under the same job id, or the same id on another cluster, differs)."""
    return f"{job_id}/{run_id}"


def job_id_of(invocation: str) -> str:
    """The job id in an ``invocationId``: without the run UUID :func:`invocation_id` added."""
    return _RUN_SUFFIX.sub("", invocation)


def format_timestamp(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, whole seconds."""
    if when.tzinfo is None:
        raise InputError("timestamp: expected a timezone-aware datetime, found a naive one")
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# scp-like git addresses: user@host:path (no scheme).
_SCP_LIKE = re.compile(r"^[^/:@\s]+@([^/:\s]+:.*)$")


def redact_url(url: str) -> str:
    """``url`` without user-info or a query: what a signed provenance may carry.

    ``https://token@host/r.git?sig=...`` -> ``https://host/r.git``; ``git@host:r.git``
    -> ``host:r.git``. Anything that is not a URL (a purl, a name) is returned as is.
    """
    if not url:
        return url
    scp = _SCP_LIKE.match(url)
    if scp is not None and "://" not in url:
        return scp.group(1)
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", parts.fragment))


REDACTED = "[REDACTED]"
# A URL anywhere in a string: scheme "://" and what follows up to white space or a
# separator that ends it in a list of URLs.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,;'\"<>]+")
# NAME=value (an environment-style or Hydra-style assignment: HF_TOKEN=..., +a.api_key=...).
_ASSIGNMENT = re.compile(r"([+~]*[A-Za-z_][A-Za-z0-9_.-]*)=(.*)", re.DOTALL)
# A word of a name that says it holds a credential (see secret_name).
_SECRET_WORD = re.compile(r"(token|secret|secrets|password|passwd|key|credential|credentials)$")


def secret_name(name: str) -> bool:
    """Whether a flag, variable or key name says it holds a credential: one of its words
    (split at anything not a letter or digit, and at lower-to-upper case changes) ends in
    ``token``, ``secret``, ``password``, ``passwd``, ``key`` or ``credential`` (or their
    plurals ``secrets``, ``credentials``), case-insensitive. ``--hf-token``, ``HF_TOKEN``,
    ``apiKey``, ``AWS_SECRET_ACCESS_KEY``, ``--db-password`` are; ``--tokenizer``,
    ``--max-tokens`` are not."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return any(_SECRET_WORD.search(word) for word in re.split(r"[^A-Za-z0-9]+", spaced.lower())
               if word)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted as :func:`redact_url` does (user-info and
    query dropped), wherever it stands (``--data=https://u:p@h/x?sig=...``)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda found: redact_url(found.group(0)), text)


def redact_arguments(arguments: Sequence[str]) -> list[str]:
    """A command line as a signed provenance may carry it: the one redaction rule.

    * every URL in an argument loses its user-info and query (:func:`redact_text`);
    * a flag (``-x``, ``--x``) whose name says it holds a credential
      (:func:`secret_name`) keeps its name and loses its value: ``--hf-token=V`` ->
      ``--hf-token=[REDACTED]``, and ``--hf-token V`` -> ``--hf-token [REDACTED]``
      (the next argument is its value unless it starts with ``-``);
    * an assignment ``NAME=V`` (environment or Hydra style) whose name says so:
      ``HF_TOKEN=V`` -> ``HF_TOKEN=[REDACTED]``.

    Applying it twice changes nothing.
    """
    out: list[str] = []
    value_follows = False
    for argument in arguments:
        if value_follows and not argument.startswith("-"):
            out.append(REDACTED)
            value_follows = False
            continue
        value_follows = False
        if argument.startswith("-"):
            flag, equals, _ = argument.partition("=")
            if secret_name(flag):
                if equals:
                    out.append(f"{flag}={REDACTED}")
                else:
                    out.append(argument)
                    value_follows = True
                continue
        else:
            assignment = _ASSIGNMENT.fullmatch(argument)
            if assignment is not None and secret_name(assignment.group(1)):
                out.append(f"{assignment.group(1)}={REDACTED}")
                continue
        out.append(redact_text(argument))
    return out


def redact_parameters(value: Any) -> Any:
    """Parameters as a signed provenance may carry them: every list of strings is a
    command line (:func:`redact_arguments`), every other string loses the credentials of
    its URLs, and a mapping's value under a name that says it holds a credential
    (:func:`secret_name`) is ``[REDACTED]`` unless it is a mapping or list (then each of
    its values is). Numbers and booleans stay as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: (REDACTED if secret_name(str(key)) and not isinstance(
            item, (Mapping, list, tuple, bool)) and item is not None else redact_parameters(item))
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(item, str) for item in value):
            return redact_arguments(value)
        return [redact_parameters(item) for item in value]
    return value


def check_digest(digest: Mapping[str, Any], where: str) -> None:
    """The one digest rule, for the merge at ingest and the model when it is built.

    Algorithm names are in-toto's (``sha256``, ``gitCommit``, ...); values are
    non-empty strings, and lowercase hex of the right length for the algorithms
    whose encoding is known.

    Raises:
        InputError: naming the algorithm, what was expected and what was found.
    """
    for algorithm, value in digest.items():
        if not _ALGORITHM.match(algorithm):
            raise InputError(f"{where}.digest: expected an algorithm name like 'sha256', "
                             f"found {algorithm!r:.40}")
        if not isinstance(value, str) or not value:
            raise InputError(f"{where}.digest.{algorithm}: expected a hex string, found "
                             f"{value!r:.40}")
        length = _HEX_LENGTHS.get(algorithm)
        if length is not None and (len(value) != length or not _HEX.match(value)):
            raise InputError(f"{where}.digest: expected {length} lowercase hex digits for "
                             f"{algorithm}, found {value[:80]!r}")


@dataclass(frozen=True, kw_only=True)
class ResourceDescriptor:
    """An in-toto ResourceDescriptor; at least one of uri, digest, content is set."""

    name: str | None = None
    uri: str | None = None
    digest: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    download_location: str | None = None
    media_type: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.uri or self.digest or self.content):
            raise InputError(
                f"resource descriptor {self.name!r}: expected at least one of uri, digest, "
                "content, found none"
            )
        check_digest(self.digest, f"resource {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.uri is not None:
            out["uri"] = self.uri
        if self.digest:
            out["digest"] = dict(self.digest)
        if self.content is not None:
            out["content"] = base64.b64encode(self.content).decode("ascii")
        if self.download_location is not None:
            out["downloadLocation"] = self.download_location
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_dict(cls, data: object, *, where: str = "resource") -> ResourceDescriptor:
        """Parse a descriptor; unknown fields are ignored."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a JSON object, found {type(data).__name__}")
        digest = data.get("digest") or {}
        if not isinstance(digest, dict):
            raise InputError(f"{where}.digest: expected an object, found {type(digest).__name__}")
        content = data.get("content")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InputError(f"{where}.annotations: expected an object")
        for key in ("name", "uri", "downloadLocation", "mediaType"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InputError(f"{where}.{key}: expected a string, found "
                                 f"{type(data[key]).__name__}")
        try:
            raw_content = None if content is None else base64.b64decode(content, validate=True)
        except (ValueError, TypeError):
            raise InputError(f"{where}.content: expected base64, found {content!r:.40}") from None
        return cls(
            name=data.get("name"),
            uri=data.get("uri"),
            digest=digest,
            content=raw_content,
            download_location=data.get("downloadLocation"),
            media_type=data.get("mediaType"),
            annotations=annotations,
        )


def record_descriptor(
    *, name: str, media_type: str, record: Mapping[str, Any]
) -> ResourceDescriptor:
    """A byproduct carrying a structured record in ``annotations``.

    Its ``sha256`` is over the record's canonical JSON, so the descriptor is
    valid in-toto (it has a digest) and a record can be cited by digest.
    """
    digest = hashlib.sha256(canonical.dumps_bytes(dict(record))).hexdigest()
    return ResourceDescriptor(
        name=name, media_type=media_type, digest={"sha256": digest}, annotations=record
    )


@dataclass(frozen=True, kw_only=True)
class Statement:
    """An in-toto Statement v1."""

    subjects: tuple[ResourceDescriptor, ...]
    predicate_type: str
    predicate: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not self.subjects:
            raise InputError("statement.subject: expected at least one subject, found none")
        for index, subject in enumerate(self.subjects):
            if not subject.digest:
                raise InputError(
                    f"statement.subject[{index}] ({subject.name!r}): expected a digest, found none"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_dict() for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": dict(self.predicate),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes that get signed."""
        return canonical.dumps_bytes(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Statement:
        """Parse a Statement; unknown fields are ignored. Raises :class:`InputError`."""
        if not isinstance(data, dict):
            raise InputError(f"statement: expected a JSON object, found {type(data).__name__}")
        if data.get("_type") != STATEMENT_TYPE:
            raise InputError(
                f"statement._type: expected {STATEMENT_TYPE!r}, found {data.get('_type')!r}"
            )
        raw_subjects = data.get("subject")
        if not isinstance(raw_subjects, list) or not raw_subjects:
            raise InputError("statement.subject: expected a non-empty list, found "
                             f"{raw_subjects!r:.40}")
        predicate_type = data.get("predicateType")
        if not isinstance(predicate_type, str) or not predicate_type:
            raise InputError(
                f"statement.predicateType: expected a type URI, found {predicate_type!r}"
            )
        predicate = data.get("predicate") or {}
        if not isinstance(predicate, dict):
            raise InputError(
                f"statement.predicate: expected an object, found {type(predicate).__name__}"
            )
        return cls(
            subjects=tuple(
                ResourceDescriptor.from_dict(s, where=f"statement.subject[{i}]")
                for i, s in enumerate(raw_subjects)
            ),
            predicate_type=predicate_type,
            predicate=predicate,
        )


def _dependency_key(rd: ResourceDescriptor) -> tuple[str, ...]:
    if rd.digest:
        return tuple(sorted(f"{k}:{v}" for k, v in rd.digest.items()))
    return ("uri", rd.uri or "", (rd.content or b"").hex())


class ProvenanceBuilder:
    """Assembles a SLSA Provenance v1 Statement for one training job.

    Dependencies are deduplicated by digest: the same dataset shard read by
    many ranks appears once, with the names merged into ``annotations``.
    Subjects and byproducts are sorted by name so output is deterministic.
    """

    def __init__(
        self,
        *,
        builder_id: str = DEFAULT_BUILDER_ID,
        build_type: str = BUILD_TYPE,
        invocation_id: str,
    ) -> None:
        if not invocation_id:
            raise InputError("invocation_id: expected a job id, found an empty string")
        self._builder_id = builder_id
        self._build_type = build_type
        self._invocation_id = invocation_id
        self._subjects: dict[str, ResourceDescriptor] = {}
        self._external: dict[str, Any] = {}
        self._internal: dict[str, Any] = {}
        self._dependencies: dict[tuple[str, ...], ResourceDescriptor] = {}
        self._byproducts: dict[str, ResourceDescriptor] = {}
        self._builder_version: dict[str, str] = {}
        self._builder_dependencies: list[ResourceDescriptor] = []
        self._started: dt.datetime | None = None
        self._finished: dt.datetime | None = None

    def add_subject(self, subject: ResourceDescriptor) -> None:
        if not subject.digest:
            raise InputError(f"subject {subject.name!r}: expected a digest, found none")
        key = subject.name or subject.uri or _dependency_key(subject)[0]
        previous = self._subjects.get(key)
        if previous is not None and previous.digest != subject.digest:
            raise InputError(
                f"subject {key!r}: expected one digest, found {dict(previous.digest)} "
                f"and {dict(subject.digest)}"
            )
        self._subjects[key] = subject

    def set_external_parameters(self, parameters: Mapping[str, Any]) -> None:
        """What the user chose, with credentials redacted (:func:`redact_parameters`):
        every statement built here carries them so, whoever reported them."""
        canonical.dumps(dict(parameters))  # refuses floats early, with a path
        self._external = redact_parameters(dict(parameters))

    def set_internal_parameters(self, parameters: Mapping[str, Any]) -> None:
        """What the platform chose, redacted as :meth:`set_external_parameters`."""
        canonical.dumps(dict(parameters))
        self._internal = redact_parameters(dict(parameters))

    def add_dependency(self, dependency: ResourceDescriptor) -> None:
        """Add an input; one with a digest already present is merged, not repeated."""
        key = _dependency_key(dependency)
        existing = self._dependencies.get(key)
        if existing is None:
            self._dependencies[key] = dependency
            return
        names = set(existing.annotations.get("slsadist_names", [existing.name or ""]))
        names.add(dependency.name or "")
        names.discard("")
        # A file seen only as read ("input", by zero-code capture) and also reported as
        # what it is (a dataset shard, a model) is recorded as what it is.
        if existing.annotations.get("slsadist_kind") in _GENERIC_KINDS and \
                dependency.annotations.get("slsadist_kind") not in _GENERIC_KINDS:
            existing = dependency
        if len(names) > 1:
            annotations = dict(existing.annotations)
            annotations["slsadist_names"] = sorted(names)
            existing = ResourceDescriptor(
                name=existing.name, uri=existing.uri, digest=existing.digest,
                content=existing.content, download_location=existing.download_location,
                media_type=existing.media_type, annotations=annotations,
            )
        self._dependencies[key] = existing

    def add_byproduct(self, byproduct: ResourceDescriptor) -> None:
        key = byproduct.name or _dependency_key(byproduct)[0]
        if key in self._byproducts:
            raise InputError(f"byproduct {key!r}: expected a unique name, found a second one")
        self._byproducts[key] = byproduct

    def set_builder(self, *, version: Mapping[str, str] | None = None,
                    dependencies: Iterable[ResourceDescriptor] = ()) -> None:
        self._builder_version = dict(version or {})
        self._builder_dependencies = list(dependencies)

    def set_times(self, *, started: dt.datetime, finished: dt.datetime) -> None:
        if finished < started:
            raise InputError(
                f"finishedOn: expected a time after startedOn {format_timestamp(started)}, "
                f"found {format_timestamp(finished)}"
            )
        self._started, self._finished = started, finished

    def build(self) -> Statement:
        builder: dict[str, Any] = {"id": self._builder_id}
        if self._builder_version:
            builder["version"] = self._builder_version
        if self._builder_dependencies:
            builder["builderDependencies"] = [d.to_dict() for d in self._builder_dependencies]
        metadata: dict[str, Any] = {"invocationId": self._invocation_id}
        if self._started is not None and self._finished is not None:
            metadata["startedOn"] = format_timestamp(self._started)
            metadata["finishedOn"] = format_timestamp(self._finished)
        dependencies = sorted(
            (d.to_dict() for d in self._dependencies.values()),
            key=canonical.dumps,
        )
        predicate: dict[str, Any] = {
            "buildDefinition": {
                "buildType": self._build_type,
                "externalParameters": self._external,
                "internalParameters": self._internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": builder,
                "metadata": metadata,
                "byproducts": [self._byproducts[k].to_dict() for k in sorted(self._byproducts)],
            },
        }
        return Statement(
            subjects=tuple(self._subjects[k] for k in sorted(self._subjects)),
            predicate_type=PREDICATE_TYPE,
            predicate=predicate,
        )


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _resolved(record: Mapping[str, Any], inputs: Callable[[int], Mapping[str, Any] | None],
              count: int) -> dict[str, Any]:
    """A ledger's rank record with its shards' input references resolved."""
    from slsa_dist.ledger import LedgerError

    try:
        return resolve_inputs(record, lambda ref: inputs(ref) if 0 <= ref < count else None)
    except ValueError as exc:
        raise LedgerError(f"ledger: {exc}") from None


@dataclass(frozen=True)
class Provenance:
    """A read-only view of a verified SLSA Provenance v1 Statement.

    Unknown fields are ignored; missing optional fields read as empty. The
    descriptor lists are parsed once (the statement is immutable).
    """

    statement: Statement
    # A record ledger beside the bundle (slsa_dist.ledger) that verify checked against
    # the statement; its records are read (and checked again) as they are asked for.
    ledger_file: Path | None = None

    @classmethod
    def from_statement(cls, statement: Statement) -> Provenance:
        if statement.predicate_type != PREDICATE_TYPE:
            raise InputError(
                f"predicateType: expected {PREDICATE_TYPE!r}, found {statement.predicate_type!r}"
            )
        if not isinstance(_get(statement.predicate, "buildDefinition"), Mapping):
            raise InputError("predicate.buildDefinition: expected an object, found none")
        if not isinstance(_get(statement.predicate, "runDetails", "builder", "id"), str):
            raise InputError("predicate.runDetails.builder.id: expected a URI, found none")
        return cls(statement)

    @property
    def builder_id(self) -> str:
        return str(_get(self.statement.predicate, "runDetails", "builder", "id"))

    @property
    def build_type(self) -> str | None:
        value = _get(self.statement.predicate, "buildDefinition", "buildType")
        return value if isinstance(value, str) else None

    @property
    def invocation_id(self) -> str | None:
        value = _get(self.statement.predicate, "runDetails", "metadata", "invocationId")
        return value if isinstance(value, str) else None

    @property
    def job_id(self) -> str | None:
        """The job or step id people name the run by: the invocationId without its run
        UUID (``job-1/<uuid4>`` -> ``job-1``; ids written before run UUIDs as they are)."""
        invocation = self.invocation_id
        return None if invocation is None else job_id_of(invocation)

    @property
    def external_parameters(self) -> Mapping[str, Any]:
        value = _get(self.statement.predicate, "buildDefinition", "externalParameters")
        return value if isinstance(value, Mapping) else {}

    @property
    def internal_parameters(self) -> Mapping[str, Any]:
        value = _get(self.statement.predicate, "buildDefinition", "internalParameters")
        return value if isinstance(value, Mapping) else {}

    def _descriptors(self, *path: str) -> list[ResourceDescriptor]:
        raw = _get(self.statement.predicate, *path)
        if not isinstance(raw, list):
            return []
        return [ResourceDescriptor.from_dict(item, where=".".join(path)) for item in raw]

    @cached_property
    def dependencies(self) -> list[ResourceDescriptor]:
        return self._descriptors("buildDefinition", "resolvedDependencies")

    @cached_property
    def byproducts(self) -> list[ResourceDescriptor]:
        return self._descriptors("runDetails", "byproducts")

    def records(self, media_type: str) -> list[Mapping[str, Any]]:
        """Every record of ``media_type``, as signed (plain JSON): the byproducts' annotations,
        and the matching lines of the ledger when one is attached (each read checks the
        whole ledger against the statement again; a changed file raises). A ledger's rank
        records come with their shards' inputs resolved (names and digests)."""
        found = [b.annotations for b in self.byproducts if b.media_type == media_type]
        ledger = self.ledger()
        kind = _LEDGER_KINDS.get(media_type)
        if ledger is not None and self.ledger_file is not None and kind is not None \
                and ledger.kinds.get(kind, 1):
            from slsa_dist.ledger import read_ledger

            inputs: list[Mapping[str, Any]] = []  # input lines come before rank lines
            for line in read_ledger(self.ledger_file, ledger):
                if line.media_type == MEDIA_INPUT and media_type == MEDIA_RANK:
                    inputs.append(line.record)
                elif line.media_type == media_type:
                    found.append(_resolved(line.record, inputs.__getitem__, len(inputs))
                                 if media_type == MEDIA_RANK else line.record)
        return found

    def ledger(self) -> Ledger | None:
        """What the statement signs of its record ledger; None when records are inline."""
        from slsa_dist.ledger import LEDGER_NAME, MEDIA_LEDGER, Ledger

        for byproduct in self.byproducts:
            if byproduct.name == LEDGER_NAME and byproduct.media_type == MEDIA_LEDGER:
                return Ledger.from_descriptor(byproduct.to_dict())
        return None

    def with_ledger(self, path: Path) -> Provenance:
        """This provenance with its (checked) ledger file attached."""
        return Provenance(self.statement, ledger_file=path)

    def rank_records(self) -> list[RankRecord]:
        """Every ``rank/<r>`` record, typed, in rank order."""
        return sorted((RankRecord.from_dict(r) for r in self.records(MEDIA_RANK)),
                      key=lambda r: r.rank)

    def node_records(self) -> list[NodeRecord]:
        """Every ``node/<id>`` record, typed."""
        return [NodeRecord.from_dict(r) for r in self.records(MEDIA_NODE)]

    def checkpoint(self, name: str) -> Checkpoint | None:
        """The ``checkpoint/<name>`` record: inline, or from the attached ledger by an
        inclusion proof (a few lines read, never the whole ledger)."""
        return next((Checkpoint.from_dict(r) for r in
                     self._one(f"checkpoint/{name}", MEDIA_CHECKPOINT)), None)

    def rank_record(self, rank: int) -> RankRecord | None:
        """The ``rank/<rank>`` record: inline, or proven from the attached ledger (with
        each input its shards refer to, proven the same way)."""
        return next((RankRecord.from_dict(r) for r in self._one(f"rank/{rank}", MEDIA_RANK)),
                    None)

    def _one(self, name: str, media_type: str) -> list[Mapping[str, Any]]:
        found = [b.annotations for b in self.byproducts
                 if b.name == name and b.media_type == media_type]
        ledger = self.ledger()
        if found or ledger is None or self.ledger_file is None:
            return found
        from slsa_dist.ledger import Prover

        with Prover(self.ledger_file, ledger) as prover:
            line = prover.prove(name)
            if line is None or line.media_type != media_type:
                return []
            if media_type != MEDIA_RANK:
                return [line.record]

            def proven_input(ref: int) -> Mapping[str, Any] | None:
                entry = prover.prove(f"input/{ref}")
                return entry.record if entry is not None \
                    and entry.media_type == MEDIA_INPUT else None

            return [_resolved(line.record, proven_input, ledger.kinds.get("input", 0))]

    def checkpoints(self) -> list[Checkpoint]:
        """Every ``checkpoint/<name>`` record, typed."""
        return [Checkpoint.from_dict(r) for r in self.records(MEDIA_CHECKPOINT)]

    def completeness(self) -> Completeness | None:
        """The ``completeness`` record; None for a provenance without one (``slsa-dist run``)."""
        found = self.records(MEDIA_COMPLETENESS)
        return Completeness.from_dict(found[0]) if found else None

    @property
    def world_size(self) -> int | None:
        value = self.external_parameters.get("worldSize")
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None

    @property
    def metadata(self) -> Mapping[str, Any]:
        value = _get(self.statement.predicate, "runDetails", "metadata")
        return value if isinstance(value, Mapping) else {}


def artifact_descriptors(manifest: Manifest, *, name: str | None = None,
                         uri: str | None = None) -> tuple[ResourceDescriptor, ResourceDescriptor]:
    """The subject for an artifact and the byproduct holding its per-file list.

    A plain file becomes a subject with its own ``sha256``; a directory (a
    sharded checkpoint) becomes ONE subject whose ``sha256`` is the OMS
    manifest root, so ``model_signing`` and slsa-dist name it the same way.
    """
    label = name or manifest.name
    subject = ResourceDescriptor(name=label, uri=uri, digest={"sha256": manifest.identity})
    record = checkpoint_record(manifest, name=label)
    return subject, record_descriptor(name=f"checkpoint/{label}", media_type=MEDIA_CHECKPOINT,
                                      record=record.to_dict())


def checkpoint_record(manifest: Manifest, *, name: str) -> Checkpoint:
    """The ``checkpoint/<name>`` record of a manifest: its root and every file by digest."""
    return Checkpoint(
        name=name,
        root_digest={"sha256": manifest.root_digest},
        serialization=manifest.serialization(),
        resources=tuple({"name": r.name, "algorithm": r.algorithm, "digest": r.digest}
                        for r in manifest.resources),
        total_bytes=manifest.total_bytes,
    )


def input_descriptor(manifest: Manifest, path: str | os.PathLike[str], *, kind: str,
                     name: str | None = None, uri: str | None = None) -> ResourceDescriptor:
    """A dependency (a dataset, a base model) named by its digest, as subjects are."""
    return ResourceDescriptor(name=name or Path(path).name,
                              uri=uri or f"file://{Path(path).resolve()}",
                              digest={"sha256": manifest.identity},
                              annotations={"slsadist_kind": kind,
                                           "slsadist_files": len(manifest.resources)})


def sign_statement(statement: Statement, signers: Sequence[Signer]) -> Envelope:
    """Sign the Statement's canonical bytes as a DSSE envelope."""
    return sign_envelope(statement.to_bytes(), payload_type=IN_TOTO_PAYLOAD_TYPE,
                         signers=signers)
