from __future__ import annotations

import datetime as dt
import json

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor as ItoRD
from in_toto_attestation.v1.statement import Statement as ItoStatement

from slsa_dist._internal import canonical
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import (
    PREDICATE_TYPE,
    ProvenanceBuilder,
    ResourceDescriptor,
    Statement,
)

from vectors import statement as vector_statement

SHA = "ab" * 32


def _validate_with_in_toto_attestation(data: dict) -> None:  # type: ignore[type-arg]
    """Validate with the independent in-toto-attestation 0.9.3 bindings.

    Pitfalls handled (shared/research/slsa-intoto-spec.md 7.3): unknown fields
    need ignore_unknown_fields; Struct turns ints into floats, so only
    structure is compared, never numbers; RD.validate checks name/uri/digest.
    """
    subjects = []
    for s in data["subject"]:
        rd = ItoRD(name=s.get("name", ""), uri=s.get("uri", ""), digest=s["digest"])
        rd.validate()
        subjects.append(rd.pb)
    statement = ItoStatement(subjects, data["predicateType"], data["predicate"])
    statement.validate()
    predicate = provenance_pb2.Provenance()
    json_format.Parse(json.dumps(data["predicate"]), predicate, ignore_unknown_fields=True)
    assert predicate.build_definition.build_type == data["predicate"]["buildDefinition"]["buildType"]
    assert predicate.run_details.builder.id == data["predicate"]["runDetails"]["builder"]["id"]
    deps = data["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert len(predicate.build_definition.resolved_dependencies) == len(deps)
    assert len(predicate.run_details.byproducts) == len(data["predicate"]["runDetails"]["byproducts"])


def test_statement_validates_with_in_toto_attestation() -> None:
    _validate_with_in_toto_attestation(vector_statement().to_dict())


def test_output_is_deterministic_and_sorted() -> None:
    first, second = vector_statement().to_bytes(), vector_statement().to_bytes()
    assert first == second
    assert first == canonical.dumps_bytes(json.loads(first))


def test_integers_stay_integers() -> None:
    builder = ProvenanceBuilder(invocation_id="j")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": SHA}))
    builder.set_external_parameters({"worldSize": 2**53 + 1})
    text = builder.build().to_bytes().decode()
    assert '"worldSize":9007199254740993' in text


def test_non_finite_floats_are_refused_with_their_path() -> None:
    """Finite floats are numbers (RFC 8785 form, #27 item 7); NaN is not JSON."""
    builder = ProvenanceBuilder(invocation_id="j")
    with pytest.raises(TypeError, match=r"\$\.hyperparameters\.lr: expected a finite number"):
        builder.set_external_parameters({"hyperparameters": {"lr": float("nan")}})


def test_dependencies_deduplicate_by_digest_and_keep_names() -> None:
    builder = ProvenanceBuilder(invocation_id="j")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": SHA}))
    for name in ("a/shard-0", "b/shard-0", "a/shard-0"):
        builder.add_dependency(ResourceDescriptor(name=name, digest={"sha256": "cd" * 32}))
    deps = builder.build().predicate["buildDefinition"]["resolvedDependencies"]
    assert len(deps) == 1
    assert deps[0]["annotations"]["slsadist_names"] == ["a/shard-0", "b/shard-0"]


def test_a_subject_with_two_digests_is_refused() -> None:
    builder = ProvenanceBuilder(invocation_id="j")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": SHA}))
    with pytest.raises(InputError, match="expected one digest"):
        builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": "cd" * 32}))


def test_times_are_rfc3339_utc() -> None:
    builder = ProvenanceBuilder(invocation_id="j")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": SHA}))
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    builder.set_times(started=start, finished=start + dt.timedelta(seconds=5))
    meta = builder.build().predicate["runDetails"]["metadata"]
    assert meta == {"invocationId": "j", "startedOn": "2026-01-01T10:00:00Z",
                    "finishedOn": "2026-01-01T10:00:05Z"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "x"}, "at least one of uri, digest, content"),
    ({"name": "x", "digest": {"sha256": "AB" * 32}}, "64 lowercase hex digits"),
    ({"name": "x", "digest": {"sha256": "ab"}}, "64 lowercase hex digits"),
])
def test_bad_resource_descriptors_are_refused(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        ResourceDescriptor(**kwargs)


def test_parsing_ignores_unknown_fields() -> None:
    data = vector_statement().to_dict()
    data["vendor_extra"] = {"x": 1}
    data["predicate"]["runDetails"]["builder"]["example_field"] = "ignored"
    provenance = Provenance.from_statement(Statement.from_dict(data))
    assert provenance.invocation_id == "job-vector-1"
    assert provenance.world_size == 2


def test_statement_requires_a_subject() -> None:
    data = vector_statement().to_dict()
    data["subject"] = []
    with pytest.raises(InputError, match="statement.subject: expected a non-empty list"):
        Statement.from_dict(data)


def test_predicate_type_is_slsa_provenance_v1() -> None:
    assert vector_statement().predicate_type == PREDICATE_TYPE
