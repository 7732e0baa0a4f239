"""A read-only view of a verified SLSA Provenance v1 statement, over its records.

:class:`Provenance` reads the statement (parameters, dependencies, byproducts) and
the typed records, inline or from a :class:`RecordSource` passed in (a record
ledger: :class:`~slsa_dist.model.LedgerRecords`). It reads no file itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from slsa_dist.errors import InputError
from slsa_dist.model._ledger import LEDGER_NAME, MEDIA_LEDGER, Ledger
from slsa_dist.model._records import Checkpoint, Completeness, NodeRecord, RankRecord
from slsa_dist.model._statement import (
    PREDICATE_TYPE,
    ResourceDescriptor,
    Statement,
    job_id_of,
)

__all__ = ["Provenance", "RecordSource"]


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


class RecordSource(Protocol):
    """Records a provenance holds outside its statement (a record ledger), read on demand.

    :class:`~slsa_dist.model.LedgerRecords` is the one there is: it checks what it
    reads against the digest and Merkle root the statement signs.
    """

    def records(self, media_type: str) -> Iterable[Mapping[str, Any]]:
        """Every record of ``media_type`` (rank records with their inputs resolved)."""
        ...

    def record(self, name: str, media_type: str) -> Mapping[str, Any] | None:
        """The record named ``name`` if it is of ``media_type``, proven on its own."""
        ...


@dataclass(frozen=True)
class Provenance:
    """A read-only view of a verified SLSA Provenance v1 Statement.

    Unknown fields are ignored; missing optional fields read as empty. The
    descriptor lists are parsed once (the statement is immutable).
    """

    statement: Statement
    # Where records beyond the statement's own byproducts come from: a record ledger
    # beside the bundle (LedgerRecords), checked against the statement as it is read.
    # The view itself reads no file.
    source: RecordSource | None = None

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
        """Every record of ``media_type``, as signed (plain JSON): the byproducts'
        annotations, then the source's (a ledger's rank records come with their shards'
        inputs resolved: names and digests)."""
        found = [b.annotations for b in self.byproducts if b.media_type == media_type]
        if self.source is not None:
            found.extend(self.source.records(media_type))
        return found

    def ledger(self) -> Ledger | None:
        """What the statement signs of its record ledger; None when records are inline."""
        for byproduct in self.byproducts:
            if byproduct.name == LEDGER_NAME and byproduct.media_type == MEDIA_LEDGER:
                return Ledger.from_descriptor(byproduct.to_dict())
        return None

    def with_records(self, source: RecordSource) -> Provenance:
        """This provenance reading its records beyond the statement from ``source``."""
        return Provenance(self.statement, source=source)

    def rank_records(self) -> list[RankRecord]:
        """Every ``rank/<r>`` record, typed, in rank order."""
        return sorted((RankRecord.from_dict(r) for r in self.records(RankRecord.MEDIA_TYPE)),
                      key=lambda r: r.rank)

    def node_records(self) -> list[NodeRecord]:
        """Every ``node/<id>`` record, typed."""
        return [NodeRecord.from_dict(r) for r in self.records(NodeRecord.MEDIA_TYPE)]

    def checkpoint(self, name: str) -> Checkpoint | None:
        """The ``checkpoint/<name>`` record: inline, or from the attached ledger by an
        inclusion proof (a few lines read, never the whole ledger)."""
        return next((Checkpoint.from_dict(r) for r in
                     self._one(f"{Checkpoint.PREFIX}{name}", Checkpoint.MEDIA_TYPE)), None)

    def rank_record(self, rank: int) -> RankRecord | None:
        """The ``rank/<rank>`` record: inline, or proven from the attached ledger (with
        each input its shards refer to, proven the same way)."""
        return next((RankRecord.from_dict(r)
                     for r in self._one(f"{RankRecord.PREFIX}{rank}", RankRecord.MEDIA_TYPE)), None)

    def _one(self, name: str, media_type: str) -> list[Mapping[str, Any]]:
        found = [b.annotations for b in self.byproducts
                 if b.name == name and b.media_type == media_type]
        if found or self.source is None:
            return found
        record = self.source.record(name, media_type)
        return [] if record is None else [record]

    def checkpoints(self) -> list[Checkpoint]:
        """Every ``checkpoint/<name>`` record, typed."""
        return [Checkpoint.from_dict(r) for r in self.records(Checkpoint.MEDIA_TYPE)]

    def completeness(self) -> Completeness | None:
        """The ``completeness`` record; None for a provenance without one (``slsa-dist run``)."""
        found = self.records(Completeness.MEDIA_TYPE)
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
