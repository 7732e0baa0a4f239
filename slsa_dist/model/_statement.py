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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from slsa_dist._internal import canonical
from slsa_dist.errors import InputError
from slsa_dist.model._digests import check_digest

__all__ = [
    "BUILDER_IDS",
    "BUILD_TYPE",
    "DEFAULT_BUILDER_ID",
    "PREDICATE_TYPE",
    "REDACTED",
    "STATEMENT_TYPE",
    "ProvenanceBuilder",
    "ResourceDescriptor",
    "Statement",
    "format_timestamp",
    "invocation_id",
    "job_id_of",
    "record_descriptor",
    "redact_arguments",
    "redact_parameters",
    "redact_text",
    "redact_url",
    "secret_name",
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


# Dependency kinds that say only that something was read, not what it is.
_GENERIC_KINDS = frozenset({"input", "other"})
_RUN_SUFFIX = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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
_SECRET_WORD = re.compile(r"(token|secret|secrets|password|passwd|passphrase|key|credential|"
                          r"credentials|authorization)$")
# Short words that name a credential only whole ("--pwd", "DB_PASS", "--auth", "--cookie";
# not "bypass", "oauth_scope" or "author").
_SECRET_WHOLE = frozenset({"pass", "pwd", "auth", "cookie", "cookies"})


def secret_name(name: str) -> bool:
    """Whether a flag, variable or key name says it holds a credential: one of its words
    (split at anything not a letter or digit, and at lower-to-upper case changes) ends in
    ``token``, ``secret``, ``password``, ``passwd``, ``passphrase``, ``key``,
    ``credential`` or ``authorization`` (or the plurals ``secrets``, ``credentials``), or
    is ``pass``, ``pwd``, ``auth``, ``cookie`` or ``cookies``, case-insensitive.
    ``--hf-token``, ``HF_TOKEN``, ``apiKey``, ``AWS_SECRET_ACCESS_KEY``, ``--db-password``,
    ``DB_PASS``, ``--auth``, ``--cookie`` are; ``--tokenizer``, ``--max-tokens``,
    ``--bypass-cache``, ``--author`` are not."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return any(word in _SECRET_WHOLE or _SECRET_WORD.search(word)
               for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word)


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
