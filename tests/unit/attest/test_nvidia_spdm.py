"""NVIDIA Hopper SPDM attestation report (nvtrust's sample) verified up to the pinned
NVIDIA Device Identity CA. Before this, nvidia-cc evidence was only the node's report:
no raw report was read and no root named, so each test here failed on that code."""

from __future__ import annotations

import json
from pathlib import Path

from slsa_dist.attest import _nvidia as nvidia
from slsa_dist.attest._verdict import Appraisal
from slsa_dist.cli import main as cli_main

VECTORS = Path(__file__).parents[2] / "assets" / "vectors" / "hw" / "nvidia"
REPORT = bytes.fromhex((VECTORS / "hopperAttestationReport.txt").read_text().strip())
CHAIN = (VECTORS / "hopperCertChain.txt").read_bytes()
UNBOUND = Appraisal(check_binding=False)


def flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1
    return bytes(out)


def test_the_sample_report_verifies_up_to_the_pinned_root() -> None:
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND)
    assert verdict.status == "verified", verdict.describe()
    assert verdict.root == ("NVIDIA Device Identity CA (sha256:102bf659d5419614c9d8e6aecebc80"
                            "454eb26b1df6a769ac720b9a690b167b48)")
    assert any("RIM" in n for n in verdict.not_verified)  # said plainly: not appraised


def test_the_sample_answers_no_job_of_ours_a_binding_mismatch() -> None:
    verdict = nvidia.verify_report(REPORT, CHAIN, bytes(32), "job", "node")
    assert (verdict.status, verdict.failure) == ("failed", "binding mismatch"), verdict


def test_every_sampled_one_bit_flip_of_the_signed_report_fails() -> None:
    for offset in [*range(0, len(REPORT), 97), len(REPORT) - 1, len(REPORT) - 50]:
        verdict = nvidia.verify_report(flip(REPORT, offset), CHAIN, b"", "", "",
                                       appraisal=UNBOUND)
        assert verdict.status == "failed", offset
        assert verdict.failure in ("signature", "malformed"), (offset, verdict)


def test_a_chain_that_does_not_reach_the_pinned_root_fails() -> None:
    certs = CHAIN.split(b"-----END CERTIFICATE-----")
    leaf_only = certs[0] + b"-----END CERTIFICATE-----\n"
    verdict = nvidia.verify_report(REPORT, leaf_only, b"", "", "", appraisal=UNBOUND)
    assert verdict.failure == "certificate chain", verdict


def test_spdm_evidence_counts_through_the_attester() -> None:
    blob = json.dumps({"format": nvidia.SPDM_FORMAT,
                       "gpus": [{"report": REPORT.hex(), "certChain": CHAIN.decode()}]}).encode()
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, b"", "", "", appraisal=UNBOUND)
    assert verdict.status == "verified"
    assert verdict.root.startswith("NVIDIA Device Identity CA")


def test_attest_verify_prints_the_verdict(capsys) -> None:  # type: ignore[no-untyped-def]
    report = str(VECTORS / "hopperAttestationReport.txt")
    chain = str(VECTORS / "hopperCertChain.txt")
    assert cli_main(["attest", "verify", "--kind", "nvidia", report, "--collateral", chain]) == 0
    assert "root: NVIDIA Device Identity CA (sha256:102bf659" in capsys.readouterr().out
    assert cli_main(["attest", "verify", "--kind", "nvidia", report, "--collateral", chain,
                     "--nonce", "00" * 32, "--job", "j", "--node", "n"]) == 1
    assert "status: failed (binding mismatch)" in capsys.readouterr().out
