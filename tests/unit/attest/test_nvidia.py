"""NVIDIA CC evidence: the node's report of its local verifier, recorded as exactly that."""

from __future__ import annotations

import json

from slsa_dist.attest import _nvidia as nvidia
from slsa_dist.attest._registry import verify_evidence

NONCE = bytes(range(32))


def blob(**fields: object) -> bytes:
    return json.dumps({"format": nvidia.FORMAT, "token": "x.y.z", "devices": [], **fields}).encode()


def test_a_passing_report_is_recorded_as_the_nodes_report_not_as_a_coordinator_check() -> None:
    verdict = verify_evidence("nvidia-cc", blob(passed=True), NONCE, "j", "n")
    assert verdict.status == "reported"  # never "verified": nothing here checked it
    assert verdict.verified == ()
    assert verdict.reason.startswith("reported by node n: NVIDIA's local GPU verifier passed")
    assert any("fixed HS256 key" in n for n in verdict.not_verified)
    assert "the nonce binding inside the token" in verdict.not_verified


def test_a_failing_report_fails_with_the_reason() -> None:
    verdict = verify_evidence("nvidia-cc", blob(passed=False), NONCE, "j", "n")
    assert verdict.status == "failed"
    assert verdict.reason == "the node reports that NVIDIA's local GPU verifier did not pass"


def test_a_truthy_but_not_true_outcome_is_not_a_pass() -> None:
    assert verify_evidence("nvidia-cc", blob(passed="yes"), NONCE, "j", "n").status == "failed"


def test_malformed_evidence_is_rejected_with_the_parse_error() -> None:
    verdict = verify_evidence("nvidia-cc", b"{not json", NONCE, "j", "n")
    assert verdict.status == "failed"
    assert verdict.reason.startswith("malformed NVIDIA evidence:")
    missing = verify_evidence("nvidia-cc", json.dumps({"token": "t"}).encode(), NONCE, "j", "n")
    assert missing.reason == "malformed NVIDIA evidence: 'passed'"


def test_without_a_cc_mode_gpu_there_is_a_reason() -> None:
    # No NVML, no GPU or CC off: each gives its reason (this suite never runs
    # on a CC-mode GPU).
    why = nvidia.available()
    assert why is not None
    assert why.strip()
