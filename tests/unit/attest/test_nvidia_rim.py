"""NVIDIA RIMs (driver and VBIOS reference integrity manifests) and OCSP answers.

Real vectors: NVIDIA's signed test RIMs from the nv-local-gpu-verifier 2.7.3 wheel,
verified up to the pinned NVIDIA CoRIM signing Root CA. They are not the RIMs of the
Hopper sample report (that report states driver 550.90.07 and VBIOS 96.00.9f.00.01; the
RIMs are for 545.00 and 96.00.5e.00.01), so the sample fails as such, and
:func:`test_which_sample_measurements_the_sample_rims_hold` records what does match.
The matching path runs on RIMs a test CA signs (its root pinned by monkeypatch) whose
golden values are the sample report's own. No real NVIDIA OCSP answer is available
offline: the OCSP answers here are real RFC 6960 responses a test CA builds with
``cryptography``'s OCSPResponseBuilder. Before this, no RIM nor OCSP answer was read.
Without an answer for NVIDIA's GPU chain, the sample's verdict is "unverified" (counted
by nothing) even with matching RIMs; the counted path runs on a synthetic GPU
(:class:`support.nvidia_pki.Gpu`) whose device root is pinned by monkeypatch too.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from slsa_dist.attest import _nvidia as nvidia
from slsa_dist.attest import _nvidia_rim as rim
from slsa_dist.attest import _ocsp as ocsp
from slsa_dist.attest import _pki as pki
from slsa_dist.attest import _roots as roots
from slsa_dist.attest._verdict import Appraisal
from slsa_dist.cli import main as cli_main

from support.nvidia_pki import Ca, Gpu

VECTORS = Path(__file__).parents[2] / "assets" / "vectors" / "hw" / "nvidia"
REPORT = bytes.fromhex((VECTORS / "hopperAttestationReport.txt").read_text().strip())
CHAIN = (VECTORS / "hopperCertChain.txt").read_bytes()
DRIVER_RIM = (VECTORS / "Driver_RIM_test_no_gpu.swidtag").read_bytes()
VBIOS_RIM = (VECTORS / "1010_0200_882_96005E0001_test_no_gpu.swidtag").read_bytes()
AT = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)  # inside the sample RIM signers' window
UNBOUND = Appraisal(at=AT, check_binding=False)
RIM_ROOT = ("NVIDIA CoRIM signing Root CA (sha256:12977b5115acb0381179279fffeb5a8c4d264971eb"
            "b32298023a465fa41df5d1)")


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


# --- the real RIMs -----------------------------------------------------------------------


@pytest.mark.parametrize(("data", "component", "version"),
                         [(DRIVER_RIM, "driver", "545.00"),
                          (VBIOS_RIM, "vbios", "96.00.5e.00.01")])
def test_each_sample_rim_verifies_up_to_the_pinned_rim_root(data: bytes, component: str,
                                                            version: str) -> None:
    manifest = rim.verify_rim(data, component, AT)
    assert manifest.version == version
    assert manifest.signer.startswith("CN=HCC RIM L4 Signer")
    assert pki.root_label("NVIDIA CoRIM signing Root CA", manifest.chain[-1]) == RIM_ROOT
    assert len(manifest.measurements) == 64


def test_a_rim_is_judged_as_of_the_appraisal_time() -> None:
    late = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # its signer expired 2025-06-26
    with pytest.raises(rim.RimError, match="not at 2026-01-01") as caught:
        rim.verify_rim(DRIVER_RIM, "driver", late)
    assert caught.value.failure == "certificate chain"


def test_one_changed_bit_of_a_signed_measurement_fails_the_rim_signature() -> None:
    at = DRIVER_RIM.index(b'ns2:Hash0="0e0ee161') + len(b'ns2:Hash0="')
    with pytest.raises(rim.RimError) as caught:
        rim.verify_rim(flip(DRIVER_RIM, at), "driver", AT)  # 0 -> 1
    assert caught.value.failure == "signature", caught.value
    active = DRIVER_RIM.replace(b'index="7" active="True"', b'index="7" active="False"')
    with pytest.raises(rim.RimError) as caught:
        rim.verify_rim(active, "driver", AT)
    assert caught.value.failure == "signature"


def test_one_changed_bit_of_the_signature_value_fails() -> None:
    start = VBIOS_RIM.index(b"SignatureValue>") + len(b"SignatureValue>")
    value = VBIOS_RIM[start:VBIOS_RIM.index(b"<", start)]
    forged = VBIOS_RIM.replace(value, base64.b64encode(flip(base64.b64decode(value), 10)))
    with pytest.raises(rim.RimError) as caught:
        rim.verify_rim(forged, "vbios", AT)
    assert caught.value.failure == "signature"


def test_a_rim_whose_keyinfo_chain_does_not_reach_the_pinned_root_fails() -> None:
    start = DRIVER_RIM.index(b"X509Certificate>") + len(b"X509Certificate>")
    text = DRIVER_RIM[start:DRIVER_RIM.index(b"<", start)]
    der = base64.b64decode(b"".join(text.split()))
    # one bit of the signer certificate's signature changed: the chain check refuses it
    forged = DRIVER_RIM.replace(text, base64.b64encode(flip(der, len(der) - 20)))
    with pytest.raises(rim.RimError) as caught:
        rim.verify_rim(forged, "driver", AT)
    assert caught.value.failure == "certificate chain", caught.value


def test_which_sample_measurements_the_sample_rims_hold() -> None:
    """The test RIMs are not the sample report's: this records exactly what matches."""
    driver = rim.verify_rim(DRIVER_RIM, "driver", AT)
    vbios = rim.verify_rim(VBIOS_RIM, "vbios", AT)
    mismatches, skipped = rim.compare(nvidia.measurements(REPORT), driver, vbios, True)
    indices = sorted(int(m.split()[2]) for m in mismatches)
    assert indices == [1, 2, 3, 7, 9, 11, 21, 22, 25, 26, 27, 29, 30, 31, 32, 34, 36, 37, 39,
                       40]
    assert [s.split()[2] for s in skipped] == ["35"]  # NVDEC0 disabled in the sample
    assert "of the driver RIM 545.00" in next(m for m in mismatches if " 7 " in m)


def test_the_sample_report_with_the_sample_rims_fails_on_the_driver_version() -> None:
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND,
                                   rims={"driver": DRIVER_RIM, "vbios": VBIOS_RIM})
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "driver version 545.00, the report states 550.90.07" in verdict.reason


def test_the_report_states_its_versions() -> None:
    fields = nvidia.opaque_data(REPORT)
    assert nvidia.driver_version(fields) == "550.90.07"
    assert nvidia.vbios_version(fields) == "96.00.9f.00.01"


# --- a test CA's RIMs and OCSP answers -----------------------------------------------------


REPORT_MEASUREMENTS = nvidia.measurements(REPORT)
# the sample report's own values, split between a driver and a VBIOS RIM as NVIDIA's are
DRIVER_GOLDEN = {i: REPORT_MEASUREMENTS[str(i + 1)] for i in (7, 21, 22, 23, 24)}
VBIOS_GOLDEN = {i: REPORT_MEASUREMENTS[str(i + 1)] for i in (0, 1, 2, 4, 8)}


@pytest.fixture
def ca(monkeypatch: pytest.MonkeyPatch) -> Ca:
    authority = Ca()
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", authority.pem())
    return authority


def matching_rims(ca: Ca) -> dict[str, bytes]:
    return {"driver": ca.sign_rim("driver", "550.90.07", DRIVER_GOLDEN, {3: "00" * 48}),
            "vbios": ca.sign_rim("vbios", "96.00.9F.00.01", VBIOS_GOLDEN)}


def test_matching_rims_verify_and_their_outcome_is_claimed(ca: Ca) -> None:
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND,
                                   rims=matching_rims(ca), ocsp_answers=ca.chain_answers())
    # no answer for NVIDIA's GPU chain: the RIMs hold, the verdict still does not count
    assert verdict.status == "unverified", verdict.describe()
    assert verdict.reason.startswith("not counted: expected RIMs and OCSP answers for every "
                                     "certificate, missing GPU certificate chain: revocation "
                                     "of CN=GH100 A01 GSP FMC LF")
    assert "RIMs (" not in verdict.reason
    text = "\n".join(verdict.verified)
    assert "the report's measurements equal the RIMs' golden values (10 active entries)" in text
    assert "driver RIM signing chain: not revoked, by OCSP answers current at" in text
    assert verdict.claims["rims"]["driver"]["version"] == "550.90.07"
    assert verdict.claims["rims"]["vbios"]["matched"] is True


def test_a_mismatched_measurement_names_its_index_and_rim(ca: Ca) -> None:
    rims = matching_rims(ca)
    rims["vbios"] = ca.sign_rim("vbios", "96.00.9f.00.01", {**VBIOS_GOLDEN, 8: "ab" * 48})
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND, rims=rims)
    assert (verdict.status, verdict.failure) == ("failed", "reference values")
    assert "measurement index 8 (SPDM block 9) of the vbios RIM 96.00.9f.00.01" in verdict.reason
    assert "1 measurement(s)" in verdict.reason


def test_an_index_active_in_both_rims_is_a_conflict(ca: Ca) -> None:
    rims = {"driver": ca.sign_rim("driver", "550.90.07", {**DRIVER_GOLDEN, 0: "00" * 48}),
            "vbios": ca.sign_rim("vbios", "96.00.9f.00.01", VBIOS_GOLDEN)}
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND, rims=rims)
    assert "index 0 is active in both" in verdict.reason, verdict


def test_a_rim_for_another_vbios_fails(ca: Ca) -> None:
    rims = matching_rims(ca)
    rims["vbios"] = ca.sign_rim("vbios", "96.00.5e.00.01", VBIOS_GOLDEN)
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND, rims=rims)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "the report states 96.00.9f.00.01" in verdict.reason


def test_a_missing_rim_fails_and_none_is_not_verified(ca: Ca) -> None:
    rims = matching_rims(ca)
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND,
                                   rims={"driver": rims["driver"]})
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND,
                                   rims_missing="the node: RIM service unreachable")
    assert verdict.status == "unverified"
    assert "RIMs (the node: RIM service unreachable)" in verdict.reason
    assert any("RIMs (the node: RIM service unreachable)" in n for n in verdict.not_verified)


def test_a_rim_signed_outside_the_pinned_root_fails(ca: Ca) -> None:
    other = Ca("other")
    rims = matching_rims(ca)
    rims["driver"] = other.sign_rim("driver", "550.90.07", DRIVER_GOLDEN)
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND, rims=rims)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain"), verdict


def test_the_binding_is_still_checked_last(ca: Ca) -> None:
    verdict = nvidia.verify_report(REPORT, CHAIN, bytes(32), "job", "node",
                                   appraisal=Appraisal(at=AT), rims=matching_rims(ca))
    assert (verdict.status, verdict.failure) == ("failed", "binding mismatch")


# --- OCSP ------------------------------------------------------------------------------------


def load(answers: list[bytes]) -> list[x509_ocsp.OCSPResponse]:
    return [ocsp.load(a) for a in answers]


def test_a_good_current_answer_by_the_issuer_holds() -> None:
    ca = Ca()
    assert ocsp.check(ca.leaf, ca.ca, load(ca.chain_answers()), AT) == "CN=test RIM CA"


def test_a_delegated_responder_holds_only_with_the_ocsp_signing_usage() -> None:
    ca = Ca()
    delegate = Ca._cert("responder", ca.ca_key, ca.ca, ca=False,
                        eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    answer = ca.answer(ca.leaf, ca.ca, ca.ca_key, signer=delegate)
    assert ocsp.check(ca.leaf, ca.ca, load([answer]), AT) == "CN=responder"
    plain = Ca._cert("not a responder", ca.ca_key, ca.ca, ca=False)
    answer = ca.answer(ca.leaf, ca.ca, ca.ca_key, signer=plain)
    with pytest.raises(pki.ChainError, match="not certified for OCSP signing"):
        ocsp.check(ca.leaf, ca.ca, load([answer]), AT)


def test_an_answer_signed_by_another_key_fails() -> None:
    ca, other = Ca(), Ca("other")
    # names ca.leaf, signed by another CA's key
    answer = ca.answer(ca.leaf, ca.ca, ca.ca_key, signer=(other.ca_key, other.ca), carry=False)
    with pytest.raises(pki.ChainError, match="signature not valid for CN=test RIM CA"):
        ocsp.check(ca.leaf, ca.ca, load([answer]), AT)
    # a delegate the issuer never certified
    rogue = Ca._cert("rogue", other.ca_key, other.ca, ca=False,
                     eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    answer = ca.answer(ca.leaf, ca.ca, ca.ca_key, signer=rogue)
    with pytest.raises(pki.ChainError, match="not a delegate of CN=test RIM CA"):
        ocsp.check(ca.leaf, ca.ca, load([answer]), AT)


def test_a_revoked_certificate_is_named() -> None:
    ca = Ca()
    answer = ca.answer(ca.leaf, ca.ca, ca.ca_key, status="revoked")
    with pytest.raises(pki.ChainError, match=r"CN=test RIM signer \(serial .*\) is revoked "
                       r"since 2024-05-01.*key_compromise"):
        ocsp.check(ca.leaf, ca.ca, load([answer]), AT)


@pytest.mark.parametrize(("this", "nxt", "match"), [
    (dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
     dt.datetime(2024, 5, 8, tzinfo=dt.timezone.utc), "not at 2024-06-01"),  # expired
    (dt.datetime(2024, 6, 2, tzinfo=dt.timezone.utc),
     dt.datetime(2024, 6, 9, tzinfo=dt.timezone.utc), "not at 2024-06-01"),  # not yet
    (dt.datetime(2024, 5, 30, tzinfo=dt.timezone.utc), None, "no nextUpdate"),
])
def test_an_answer_not_current_at_the_appraisal_time_fails(this: dt.datetime,
                                                           nxt: dt.datetime | None,
                                                           match: str) -> None:
    ca = Ca()
    answer = ca.answer(ca.leaf, ca.ca, ca.ca_key, this=this, nxt=nxt)
    with pytest.raises(pki.ChainError, match=match):
        ocsp.check(ca.leaf, ca.ca, load([answer]), AT)


def test_an_unknown_status_and_a_foreign_answer_fail() -> None:
    ca, other = Ca(), Ca("other")
    with pytest.raises(pki.ChainError, match="status unknown"):
        ocsp.check(ca.leaf, ca.ca, load([ca.answer(ca.leaf, ca.ca, ca.ca_key,
                                                   status="unknown")]), AT)
    with pytest.raises(pki.ChainError, match="no OCSP answer for CN=test RIM signer"):
        ocsp.check(ca.leaf, ca.ca, load(other.chain_answers()), AT)


def test_a_revoked_rim_signer_fails_the_gpu_verdict_naming_it(ca: Ca) -> None:
    answers = [ca.answer(ca.leaf, ca.ca, ca.ca_key, status="revoked"),
               ca.answer(ca.ca, ca.root, ca.root_key)]
    verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND,
                                   rims=matching_rims(ca), ocsp_answers=answers)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    assert "driver RIM signing chain: CN=test RIM signer" in verdict.reason
    assert "is revoked" in verdict.reason


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> Gpu:
    """A synthetic GPU, its device root pinned in place of NVIDIA's."""
    device = Gpu()
    monkeypatch.setattr(roots, "NVIDIA_DEVICE_ROOT", device.pem())
    return device


def gpu_rims(ca: Ca, gpu: Gpu) -> dict[str, bytes]:
    driver, vbios = gpu.golden()
    return {"driver": ca.sign_rim("driver", "550.90.07", driver),
            "vbios": ca.sign_rim("vbios", "96.00.9F.00.01", vbios)}


def test_evidence_and_cli_carry_rims_and_answers(ca: Ca, gpu: Gpu, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rims = gpu_rims(ca, gpu)
    report, chain = gpu.report(bytes(32)), gpu.chain_pem()
    answers = ca.chain_answers() + gpu.answers()
    blob = {"format": nvidia.SPDM_FORMAT, "gpus": [{
        "report": report.hex(), "certChain": chain.decode(),
        "rims": {c: base64.b64encode(v).decode() for c, v in rims.items()},
        "ocsp": [base64.b64encode(a).decode() for a in answers]}]}
    evidence = tmp_path / "gpu.json"
    evidence.write_text(json.dumps(blob))
    assert cli_main(["attest", "verify", "--kind", "nvidia", str(evidence),
                     "--at", AT.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "verified: the report's measurements equal the RIMs' golden values" in out
    # the raw report with the chain, both RIMs and the answers as --collateral files
    paths = []
    for name, data in (("chain.pem", chain), ("driver.swidtag", rims["driver"]),
                       ("vbios.swidtag", rims["vbios"]),
                       *((f"ocsp{i}.der", a) for i, a in enumerate(answers))):
        (tmp_path / name).write_bytes(data)
        paths += ["--collateral", str(tmp_path / name)]
    (tmp_path / "report.txt").write_text(report.hex())
    assert cli_main(["attest", "verify", "--kind", "nvidia", str(tmp_path / "report.txt"),
                     *paths, "--at", AT.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "vbios RIM 96.00.9f.00.01" in out
    assert "status: verified" in out
    # the same without the GPU chain's answers: not counted, exit 1
    assert cli_main(["attest", "verify", "--kind", "nvidia", str(tmp_path / "report.txt"),
                     *paths[:-4], "--at", AT.isoformat()]) == 1
    out = capsys.readouterr().out
    assert "status: unverified" in out
    assert "revocation of CN=test GPU attestation; CN=test GPU provisioner ICA" in out
    flipped = json.loads(json.dumps(blob))
    golden = gpu.golden()[0][7]
    flipped["gpus"][0]["rims"]["driver"] = base64.b64encode(
        rims["driver"].replace(golden[:8].encode(), b"00000000")).decode()
    evidence.write_text(json.dumps(flipped))
    assert cli_main(["attest", "verify", "--kind", "nvidia", str(evidence),
                     "--at", AT.isoformat()]) == 1
    assert "status: failed (signature)" in capsys.readouterr().out


# --- reference values ------------------------------------------------------------------------


def test_reference_values_can_require_the_rim_comparison_and_versions(ca: Ca,
                                                                    gpu: Gpu) -> None:
    from dataclasses import replace

    from slsa_dist.attest._reference import ReferenceValues, appraise

    def gpus(verdict: nvidia.EvidenceVerdict) -> nvidia.EvidenceVerdict:
        return replace(verdict, claims={"gpus": [dict(verdict.claims)]})

    refs = ReferenceValues.from_json({"version": 1, "nvidia-cc": {
        "rims": "matched", "driverVersion": ["550.90.07", "550.127.05"],
        "vbiosVersion": "96.00.9F.00.01"}})
    report, chain = gpu.report(bytes(32)), gpu.chain_pem()
    answers = ca.chain_answers() + gpu.answers()
    compared = gpus(nvidia.verify_report(report, chain, b"", "", "", appraisal=UNBOUND,
                                         rims=gpu_rims(ca, gpu), ocsp_answers=answers))
    held = appraise(compared, "nvidia-cc", refs)
    assert held.status == "verified", held.describe()
    assert ("driver and VBIOS RIM comparison, driver version, VBIOS version equal the "
            "reference values") in held.verified
    # without RIMs the verdict counts for nothing already ("rims": "matched" is not needed
    # for that), and reference values never make it count
    without = gpus(nvidia.verify_report(report, chain, b"", "", "", appraisal=UNBOUND,
                                        ocsp_answers=answers))
    held = appraise(without, "nvidia-cc", refs)
    assert held.status == "unverified", held.describe()
    assert "RIMs (no RIMs carried)" in held.reason
    # a verified verdict without the RIM outcome (none such is made here) fails them
    bare = replace(compared, claims={"gpus": [{k: v for k, v in compared.claims["gpus"][0]
                                               .items() if k != "rims"}]})
    held = appraise(bare, "nvidia-cc", refs)
    assert (held.status, held.failure) == ("failed", "reference values")
    assert "GPU 0 driver and VBIOS RIM comparison: expected matched, found no such" in held.reason
    other = ReferenceValues.from_json({"version": 1, "nvidia-cc": {"driverVersion": "535.1"}})
    assert "driver version: expected 535.1, found 550.90.07" in appraise(
        compared, "nvidia-cc", other).reason
    with pytest.raises(nvidia.InputError, match=r"rims: expected \"matched\""):
        ReferenceValues.from_json({"version": 1, "nvidia-cc": {"rims": "yes"}})


def test_every_sampled_bit_flip_of_the_signed_part_of_a_rim_fails() -> None:
    end = DRIVER_RIM.index(b"<ds:Signature")
    for offset in [*range(0, end, 211), end - 1]:
        with pytest.raises(rim.RimError):
            rim.verify_rim(flip(DRIVER_RIM, offset), "driver", AT)


def test_garbage_rims_and_answers_are_a_verdict_never_an_exception() -> None:
    for rims, answers in (({"driver": b"<x/>", "vbios": b"\xff"}, []),
                          ({"driver": DRIVER_RIM[:5000], "vbios": VBIOS_RIM}, []),
                          (None, [b"\x30\x03\x0a\x01\x00"]), (None, [b"junk"])):
        verdict = nvidia.verify_report(REPORT, CHAIN, b"", "", "", appraisal=UNBOUND,
                                       rims=rims, ocsp_answers=answers)
        assert verdict.status == "failed", (rims, answers, verdict)
