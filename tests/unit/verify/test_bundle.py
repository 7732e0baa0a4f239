"""verify_bundle / check_bundle on hand-built provenance: each check, without a job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from slsa_dist.model._records import MEDIA_COMPLETENESS, MEDIA_RANK, Completeness, RankRecord
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, record_descriptor
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import VerificationFailed, check_bundle, verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, BuilderId, Complete

SIGNER = Signer.generate()
MODEL = b"model bytes\n"


def bundle(tmp_path: Path, *, world_size: int = 2, completed: tuple[int, ...] = (0, 1),
           completeness: Completeness | None = None, builder_id: str | None = None,
           signer: Signer = SIGNER) -> Path:
    builder = ProvenanceBuilder(invocation_id="job-1", **(
        {"builder_id": builder_id} if builder_id else {}))
    builder.add_subject(ResourceDescriptor(name="model.bin",
                                           digest={"sha256": hashlib.sha256(MODEL).hexdigest()}))
    builder.set_external_parameters({"worldSize": world_size})
    for rank in completed:
        builder.add_byproduct(record_descriptor(
            name=f"rank/{rank}", media_type=MEDIA_RANK,
            record=RankRecord(rank=rank, node="n", completed=True).to_dict()))
    if completeness is not None:
        builder.add_byproduct(record_descriptor(name="completeness",
                                                media_type=MEDIA_COMPLETENESS,
                                                record=completeness.to_dict()))
    path = tmp_path / "job.intoto.jsonl"
    write_bundle(path, [sign_statement(builder.build(), [signer])])
    return path


def failed(checks: list, name: str) -> str:  # type: ignore[type-arg]
    (check,) = [c for c in checks if c.name == name]
    assert not check.ok
    return str(check.detail)


def test_a_complete_job_with_its_artifact_verifies(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(MODEL)
    result = verify_bundle(bundle(tmp_path), keys=[SIGNER.public()],
                           policy=AllOf(Artifacts(tmp_path / "model.bin"), Complete()))
    assert result.ok
    assert result.provenance is not None
    assert result.provenance.invocation_id == "job-1"


def test_a_key_that_did_not_sign_fails_the_signature_and_yields_no_provenance(
        tmp_path: Path) -> None:
    result = check_bundle(bundle(tmp_path), keys=[Signer.generate().public()])
    assert result.provenance is None
    assert not result.ok
    assert failed(result.checks, "signature")


def test_an_artifact_with_other_bytes_names_the_subject_it_should_match(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"tampered\n")
    result = check_bundle(bundle(tmp_path), keys=[SIGNER.public()],
                          policy=Artifacts(tmp_path / "model.bin"))
    assert "for subject 'model.bin'" in failed(result.checks,
                                               f"artifact {tmp_path / 'model.bin'}")


def test_a_rank_without_a_completed_report_fails_completeness(tmp_path: Path) -> None:
    result = check_bundle(bundle(tmp_path, world_size=4, completed=(0, 2)),
                          keys=[SIGNER.public()])
    assert failed(result.checks, "completeness") == "ranks without a completed report: 1,3"


def test_every_gap_the_completeness_record_names_fails_verification(tmp_path: Path) -> None:
    gaps = Completeness(complete=False, missing_files=("final/b",),
                        failed_evidence=("n: tpm: bad quote",), sequence_gaps=("rank/0: 2",))
    with pytest.raises(VerificationFailed) as raised:
        verify_bundle(bundle(tmp_path, completeness=gaps), keys=[SIGNER.public()])
    detail = str(raised.value)
    for expected in ("missing checkpoint files: final/b", "failed evidence: n: tpm: bad quote",
                     "event gaps: rank/0: 2"):
        assert expected in detail


def test_a_required_builder_id_must_match(tmp_path: Path) -> None:
    result = check_bundle(bundle(tmp_path, builder_id="https://example/builders/a"),
                          keys=[SIGNER.public()], policy=BuilderId("https://example/builders/b"))
    assert failed(result.checks, "builder.id") == ("expected 'https://example/builders/b', found "
                                            "'https://example/builders/a'")
