"""Item 15: anyone can re-check the hardware evidence; no coordinator verdict is trusted.

The bundle held the coordinator's verdict and a digest of the evidence, so a
third party had to trust the coordinator: a record saying ``verified`` passed
``--require-attestation``. The raw evidence now travels in the node record,
and ``require_attestation`` re-appraises it from the nonce, job and node in
the signed statement.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from slsa_dist.attest import _tpm as tpm
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import EvidenceRecord
from slsa_dist.verify._attestation import require_attestation

from conftest import need
from support import swtpm
from support.attest import with_evidence

NONCE = bytes(range(32))


def _job(evidence: EvidenceRecord, node: str = "node-0") -> Provenance:
    return with_evidence({node: (evidence,)},
                         invocation_id="job-1/0c2f5a4e-8d1b-4f3a-9b7e-1a2b3c4d5e6f")


def _record(blob: bytes, **fields: object) -> EvidenceRecord:
    return EvidenceRecord(kind="tpm", status="verified", blob=base64.b64encode(blob).decode(),
                          nonce=NONCE.hex(), size=len(blob), **fields)  # type: ignore[arg-type]


def test_a_verdict_without_raw_evidence_does_not_count() -> None:
    claimed = EvidenceRecord(kind="tpm", status="verified", claims={"akSha256": "sha256:x"})
    check = require_attestation(_job(claimed), "tpm")
    assert not check.ok
    assert "expected the raw evidence in the bundle to re-appraise, found only the " \
           "coordinator's verdict (verified)" in check.detail


def test_garbage_recorded_as_verified_fails_reappraisal() -> None:
    check = require_attestation(_job(_record(b'{"attest": "AAAA"}')), "tpm")
    assert not check.ok
    assert "malformed TPM evidence" in check.detail


@pytest.fixture(scope="module")
def quote() -> Iterator[bytes]:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    with swtpm.tcti_env():
        yield tpm.collect(NONCE, "job-1", "node-0")


@pytest.mark.tpm
def test_a_genuine_quote_is_reappraised_and_counts(quote: bytes) -> None:
    ak = tpm.verify(quote, NONCE, "job-1", "node-0").claims["akSha256"]
    check = require_attestation(_job(_record(quote)), "tpm",
                                trusted_aks=frozenset({(str(ak), "node-0")}))
    assert check.ok, check.detail
    assert "re-appraised from the raw evidence" in check.detail


@pytest.mark.tpm
def test_a_quote_by_an_ak_no_root_vouches_for_does_not_count(quote: bytes) -> None:
    """#26: with neither EK roots nor trusted AKs, any well-formed quote passed: its AK
    signature proves only that some key signed, and anyone can make a key."""
    check = require_attestation(_job(_record(quote)), "tpm")
    assert not check.ok
    assert "its quote is signed by an AK no root vouches for" in check.detail
    assert "--ek-roots" in check.detail


@pytest.mark.tpm
def test_a_genuine_quote_for_another_node_fails_its_binding(quote: bytes) -> None:
    check = require_attestation(_job(_record(quote), node="node-m"), "tpm")
    assert not check.ok
    assert "nonce binding" in check.detail
