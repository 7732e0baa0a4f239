"""NVIDIA Hopper SPDM attestation report (nvtrust's sample) verified up to the pinned
NVIDIA Device Identity CA. Before this, nvidia-cc evidence was only the node's report:
no raw report was read and no root named, so each test here failed on that code.

The sample carries no RIMs of its own and no one can sign OCSP answers for NVIDIA's real
chain, so its verdict is "unverified" (counted by no requirement) with its chain verified
up to the pinned root. A counted verdict is shown end to end on a synthetic GPU
(:class:`support.nvidia_pki.Gpu`): its device root and a test RIM root pinned in place of
NVIDIA's, RIMs whose golden values are its measurements, and an OCSP answer for every
certificate of every chain; each piece of collateral left out, a revoked answer and a
one-bit change of its report are then each shown to keep it from counting.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from slsa_dist.attest import _nvidia as nvidia
from slsa_dist.attest import _roots as roots
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._verdict import Appraisal
from slsa_dist.cli import main as cli_main

from support.nvidia_pki import Ca, Gpu, answer

VECTORS = Path(__file__).parents[2] / "assets" / "vectors" / "hw" / "nvidia"
REPORT = bytes.fromhex((VECTORS / "hopperAttestationReport.txt").read_text().strip())
CHAIN = (VECTORS / "hopperCertChain.txt").read_bytes()
UNBOUND = Appraisal(check_binding=False)


def flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1
    return bytes(out)


NVIDIA_ROOT = ("NVIDIA Device Identity CA (sha256:102bf659d5419614c9d8e6aecebc80454eb26b1df6a7"
               "69ac720b9a690b167b48)")


def test_the_sample_report_verifies_up_to_the_pinned_root_but_does_not_count() -> None:
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND)
    assert verdict.status == "unverified", verdict.describe()
    assert verdict.root == NVIDIA_ROOT
    assert f"its certificate chain up to {NVIDIA_ROOT}" in verdict.verified
    assert verdict.reason.startswith("not counted: expected RIMs and OCSP answers for every "
                                     "certificate, missing GPU certificate chain: revocation "
                                     "of CN=GH100 A01 GSP FMC LF")
    assert "(no OCSP answer carried)" in verdict.reason
    assert "driver and VBIOS RIMs (no RIMs carried)" in verdict.reason


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


def test_the_sample_without_collateral_does_not_count_through_the_attester() -> None:
    blob = json.dumps({"format": nvidia.SPDM_FORMAT,
                       "gpus": [{"report": REPORT.hex(), "certChain": CHAIN.decode()}]}).encode()
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, b"", "", "", appraisal=UNBOUND)
    assert verdict.status == "unverified", verdict.describe()
    assert verdict.reason.startswith("GPU 0: not counted: expected RIMs and OCSP answers")
    assert verdict.root == NVIDIA_ROOT  # what was verified is still said
    assert f"GPU 0: its certificate chain up to {NVIDIA_ROOT}" in verdict.verified


def test_attest_verify_prints_the_verdict(capsys) -> None:  # type: ignore[no-untyped-def]
    report = str(VECTORS / "hopperAttestationReport.txt")
    chain = str(VECTORS / "hopperCertChain.txt")
    assert cli_main(["attest", "verify", "--kind", "nvidia", report, "--collateral", chain]) == 1
    out = capsys.readouterr().out
    assert "status: unverified" in out
    assert "root: NVIDIA Device Identity CA (sha256:102bf659" in out
    assert cli_main(["attest", "verify", "--kind", "nvidia", report, "--collateral", chain,
                     "--nonce", "00" * 32, "--job", "j", "--node", "n"]) == 1
    assert "status: failed (binding mismatch)" in capsys.readouterr().out


# --- a synthetic GPU with complete collateral ---------------------------------------------

AT = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)  # the test OCSP answers' window
NONCE, JOB, NODE = b"n" * 32, "job-1", "node-0"


@dataclass
class Complete:
    """A synthetic GPU's report bound to NONCE, JOB and NODE, its chain, matching RIMs and
    OCSP answers for every certificate of its chain and of both RIMs' chains."""

    gpu: Gpu
    ca: Ca
    report: bytes
    rims: dict[str, bytes]
    answers: list[bytes]

    def blob(self, *, rims: bool = True, answers: list[bytes] | None = None,
             report: bytes | None = None) -> bytes:
        entry: dict[str, object] = {
            "report": (report or self.report).hex(),
            "certChain": self.gpu.chain_pem().decode(),
            "ocsp": [base64.b64encode(a).decode()
                     for a in (self.answers if answers is None else answers)]}
        if rims:
            entry["rims"] = {c: base64.b64encode(v).decode() for c, v in self.rims.items()}
        return json.dumps({"format": nvidia.SPDM_FORMAT, "gpus": [entry]}).encode()

    def verify(self, blob: bytes) -> nvidia.EvidenceVerdict:
        return nvidia.NvidiaAttester().verify("nvidia-cc", blob, NONCE, JOB, NODE,
                                              appraisal=Appraisal(at=AT))


@pytest.fixture
def complete(monkeypatch: pytest.MonkeyPatch) -> Complete:
    gpu, ca = Gpu(), Ca()
    monkeypatch.setattr(roots, "NVIDIA_DEVICE_ROOT", gpu.pem())
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", ca.pem())
    rims = ca.rims_for(gpu)
    return Complete(gpu, ca, gpu.report(report_data(NONCE, JOB, NODE)), rims,
                    gpu.answers() + ca.chain_answers())  # one RIM CA signs both RIMs


def test_spdm_evidence_counts_through_the_attester(complete: Complete) -> None:
    verdict = complete.verify(complete.blob())
    assert verdict.status == "verified", verdict.describe()
    assert verdict.root.startswith("NVIDIA Device Identity CA (sha256:")
    assert verdict.root != NVIDIA_ROOT  # the test root, pinned in its place
    text = "\n".join(verdict.verified)
    for line in ("GPU certificate chain: not revoked, by OCSP answers",
                 "driver RIM signing chain: not revoked", "vbios RIM signing chain: not revoked",
                 "the report's measurements equal the RIMs' golden values (10 active entries)",
                 "nonce, job and node binding (the SPDM request nonce)"):
        assert line in text, line
    assert verdict.not_verified == ()
    assert verdict.claims["gpus"][0]["rims"]["vbios"]["matched"] is True


def test_without_the_rims_it_is_unverified_naming_them(complete: Complete) -> None:
    verdict = complete.verify(complete.blob(rims=False))
    assert verdict.status == "unverified", verdict.describe()
    assert verdict.reason == ("GPU 0: not counted: expected RIMs and OCSP answers for every "
                              "certificate, missing the measurements against NVIDIA's driver "
                              "and VBIOS RIMs (no RIMs carried)")
    assert "GPU 0: nonce, job and node binding (the SPDM request nonce)" in verdict.verified


def test_without_one_ocsp_answer_it_is_unverified_naming_that_certificate(
        complete: Complete) -> None:
    verdict = complete.verify(complete.blob(answers=complete.answers[1:]))  # not the leaf's
    assert verdict.status == "unverified", verdict.describe()
    assert verdict.reason == ("GPU 0: not counted: expected RIMs and OCSP answers for every "
                              "certificate, missing GPU certificate chain: revocation of "
                              "CN=test GPU attestation (no OCSP answer carried)")
    verdict = complete.verify(complete.blob(answers=complete.answers[:-1]))  # the RIM CA's
    assert verdict.status == "unverified"
    for component in ("driver", "vbios"):  # one test CA signs both RIMs
        assert f"{component} RIM signing chain: revocation of CN=test RIM CA (no OCSP " \
               "answer carried)" in verdict.reason


def test_a_revoked_gpu_certificate_fails(complete: Complete) -> None:
    gpu = complete.gpu
    revoked = answer(gpu.ica, gpu.root, gpu.root_key, status="revoked")
    verdict = complete.verify(complete.blob(answers=[complete.answers[0], revoked,
                                                     *complete.answers[2:]]))
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain"), verdict
    assert "CN=test GPU provisioner ICA (serial" in verdict.reason
    assert "is revoked since 2024-05-01" in verdict.reason


def test_one_changed_bit_of_the_synthetic_report_fails_its_signature(
        complete: Complete) -> None:
    for offset in (10, 37 + 20, len(complete.report) - 200, len(complete.report) - 1):
        verdict = complete.verify(complete.blob(report=flip(complete.report, offset)))
        assert (verdict.status, verdict.failure) == ("failed", "signature"), (offset, verdict)
