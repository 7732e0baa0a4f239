"""Issue 25 item 6: verify fails closed, and the policy lives in the library.

A requirement that cannot be checked (a record, the record ledger, a file list) is a
FAIL naming what is missing, never a skip with a warning. A bundle of a job above 256
ranks carries its records in ``<job>.ledger.jsonl``; with that file withheld, plain
``verify`` passed on the signed summary with a warning, and ``--rank`` and
``--require-attestation`` failed without saying the ledger was what was missing. A
policy with nothing in it must not pass vacuously.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.sign._keys import Signer
from slsa_dist.verify import (
    AllOf,
    AnyOf,
    Attestation,
    BuilderId,
    Complete,
    Rank,
    VerificationFailed,
    check_bundle,
    verify_bundle,
)

from support.modeljob import signed_model_job


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path, Path, Signer]:
    """(bundle with its ledger beside it, the same bundle alone, public key, signer)."""
    signer = Signer.generate()
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    bundle, _ = signed_model_job(tmp_path / "job", signer, ledger=True)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(bundle, alone / bundle.name)  # the ledger stays behind
    return bundle, alone / bundle.name, public, signer


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


def test_plain_verify_fails_without_the_ledger_naming_it(
        job: tuple[Path, Path, Path, Signer], capsys: pytest.CaptureFixture[str]) -> None:
    bundle, alone, public, _ = job
    assert cli_main(["verify", str(bundle), "--key", str(public)]) == 0
    _out(capsys)
    assert cli_main(["verify", str(alone), "--key", str(public)]) == 1
    out = _out(capsys)
    (line,) = [x for x in out.splitlines() if x.startswith("FAIL  completeness")]
    assert "big.ledger.jsonl" in line
    assert "no requirement of this policy needed them" not in out  # it was needed


def test_rank_fails_without_the_ledger_naming_it(
        job: tuple[Path, Path, Path, Signer], capsys: pytest.CaptureFixture[str]) -> None:
    bundle, alone, public, _ = job
    assert cli_main(["verify", str(bundle), "--key", str(public), "--rank", "1"]) == 0
    _out(capsys)
    assert cli_main(["verify", str(alone), "--key", str(public), "--rank", "1"]) == 1
    (line,) = [x for x in _out(capsys).splitlines() if x.startswith("FAIL  rank 1")]
    assert "big.ledger.jsonl" in line


def test_attestation_fails_without_the_ledger_naming_it(
        job: tuple[Path, Path, Path, Signer], capsys: pytest.CaptureFixture[str]) -> None:
    _, alone, public, _ = job
    assert cli_main(["verify", str(alone), "--key", str(public),
                     "--require-attestation", "any"]) == 1
    (line,) = [x for x in _out(capsys).splitlines() if x.startswith("FAIL  attestation any")]
    assert "big.ledger.jsonl" in line


def test_the_library_fails_every_requirement_that_needs_the_ledger(
        job: tuple[Path, Path, Path, Signer]) -> None:
    _, alone, _, signer = job
    result = check_bundle(alone, keys=[signer.public()],
                          policy=AllOf(Complete(), Rank(0), Attestation("any")))
    assert not result.ok
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert set(failed) == {"completeness", "rank 0", "attestation any"}
    assert all("big.ledger.jsonl" in detail for detail in failed.values())
    with pytest.raises(VerificationFailed, match="big.ledger.jsonl"):
        verify_bundle(alone, keys=[signer.public()], policy=Rank(0))


def test_a_requirement_that_does_not_need_the_ledger_still_passes(
        job: tuple[Path, Path, Path, Signer]) -> None:
    """Fail closed is per requirement: the builder id is in the signed statement."""
    _, alone, _, signer = job
    result = check_bundle(alone, keys=[signer.public()], policy=BuilderId(
        "https://slsa-dist.dev/builders/local/v1"))
    assert result.ok, result.checks
    assert any("big.ledger.jsonl" in note for note in result.notes)


@pytest.mark.parametrize("empty", [AllOf(), AnyOf(), AllOf(AnyOf())],
                         ids=["AllOf()", "AnyOf()", "AllOf(AnyOf())"])
def test_a_policy_with_nothing_in_it_does_not_pass(job: tuple[Path, Path, Path, Signer],
                                                   empty: object) -> None:
    bundle, _, _, signer = job
    result = check_bundle(bundle, keys=[signer.public()], policy=empty)  # type: ignore[arg-type]
    assert not result.ok
    with pytest.raises(VerificationFailed):
        verify_bundle(bundle, keys=[signer.public()], policy=empty)  # type: ignore[arg-type]


def test_any_of_passes_on_one_alternative_and_fails_on_none(
        job: tuple[Path, Path, Path, Signer]) -> None:
    bundle, _, _, signer = job
    wrong, right = BuilderId("https://example/other"), Rank(1)
    assert check_bundle(bundle, keys=[signer.public()], policy=AnyOf(wrong, right)).ok
    result = check_bundle(bundle, keys=[signer.public()], policy=AnyOf(wrong, BuilderId("https://example/third")))
    assert not result.ok


def test_a_requirement_that_checks_nothing_fails(job: tuple[Path, Path, Path, Signer]) -> None:
    class Nothing:
        def check(self, evidence: object) -> list[object]:
            return []

    bundle, _, _, signer = job
    result = check_bundle(bundle, keys=[signer.public()], policy=AllOf(Nothing()))  # type: ignore[arg-type]
    assert not result.ok
