"""Reference values held to what verified evidence proves (issue 26 item 5).

Real, vendor-signed vectors (tests/assets/vectors/hw, SOURCE.md): the TDX quote's MRTD
and RTMRs, the SNP reports' measurements and policy, the Hopper GPU's SPDM
measurements. Each passes with its own values and fails with one value changed, naming
the register, the expected and the found value; a register the policy names that the
evidence does not carry fails too. The vectors answer no slsa-dist job (their binding
is someone else's), so the bundle-level tests re-appraise their raw bytes with the
binding check off: every other check, up to the vendor root, runs as in ``verify``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from slsa_dist.attest._nvidia import measurements
from slsa_dist.attest._reference import ReferenceValues, appraise
from slsa_dist.attest._snp import verify_report
from slsa_dist.attest._tdx import verify_quote
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict
from slsa_dist.cli import main as cli_main
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import EvidenceRecord
from slsa_dist.verify import Attestation
from slsa_dist.verify import ReferenceValues as PublicReferenceValues
from slsa_dist.verify._attestation import reappraise, require_attestation

from support.attest import with_evidence

HW = Path(__file__).resolve().parents[2] / "assets" / "vectors" / "hw"
QUOTE = (HW / "tdx" / "quote-v4.bin").read_bytes()
COLLATERAL = (HW / "tdx" / "quote-v4.collateral.json").read_bytes()
AT = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)
SNP_GO = ((HW / "snp" / "go-sev-guest-milan.report.bin").read_bytes(),
          (HW / "snp" / "go-sev-guest-milan.vcek.der").read_bytes())
SNP_VIRTEE = (bytes.fromhex((HW / "snp" / "virtee-milan.report.hex").read_text().strip()),
              (HW / "snp" / "virtee-milan.vcek.der").read_bytes())
GPU_REPORT = bytes.fromhex((HW / "nvidia" / "hopperAttestationReport.txt").read_text().strip())
GPU_CHAIN = (HW / "nvidia" / "hopperCertChain.txt").read_bytes()

# The TD report body of quote-v4 (after the 48-byte header): MRTD at 136, RTMR0-3 at
# 328 + 48k (Intel TDX DCAP quote layout), read here from the bytes, not from our parser.
BODY = QUOTE[48:48 + 584]
MRTD = BODY[136:184].hex()
RTMR = [BODY[328 + 48 * k:376 + 48 * k].hex() for k in range(4)]
TDX_VALUES = {"mrtd": MRTD, **{f"rtmr{k}": RTMR[k] for k in range(4)}}
# MEASUREMENT at 0x90 of an SNP report (AMD SEV-SNP ABI, table 21).
GO_MEASUREMENT = SNP_GO[0][0x90:0xC0].hex()
VIRTEE_MEASUREMENT = SNP_VIRTEE[0][0x90:0xC0].hex()


def changed(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


def refs(**kinds: object) -> ReferenceValues:
    return ReferenceValues.from_json({"version": 1, **{k.replace("_", "-"): v
                                                       for k, v in kinds.items()}})


def tdx_verdict() -> EvidenceVerdict:
    verdict = verify_quote(QUOTE, COLLATERAL, AT, None)
    assert verdict.status == "verified", verdict.reason
    return verdict


def test_the_vectors_values_are_the_ones_the_layout_and_dcap_qvl_give() -> None:
    assert MRTD.startswith("91eb2b44d141d4ec")
    assert RTMR[3] == "00" * 48
    qvl = pytest.importorskip("dcap_qvl")
    report = qvl.parse_quote(QUOTE).report
    assert (report.mr_td.hex(), [report.rt_mr0.hex(), report.rt_mr1.hex(),
                                 report.rt_mr2.hex(), report.rt_mr3.hex()]) == (MRTD, RTMR)


# --- TDX ------------------------------------------------------------------------------

def test_tdx_quote_holds_its_mrtd_and_rtmrs() -> None:
    held = appraise(tdx_verdict(), "tdx", refs(tdx=TDX_VALUES))
    assert held.status == "verified", held.reason
    assert "MRTD, RTMR0, RTMR1, RTMR2, RTMR3 equal the reference values" in held.verified
    assert not any("(none configured)" in n for n in held.not_verified)


@pytest.mark.parametrize("register", ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"])
def test_tdx_quote_with_one_register_changed_fails_naming_it(register: str) -> None:
    values = dict(TDX_VALUES)
    values[register] = changed(values[register])
    held = appraise(tdx_verdict(), "tdx", refs(tdx=values))
    assert (held.status, held.failure) == ("failed", "reference values")
    assert held.reason == (f"reference values: {register.upper()}: expected "
                           f"{values[register]}, found {TDX_VALUES[register]}")


def test_a_debuggable_td_can_be_refused_by_reference_values() -> None:
    """TD_ATTRIBUTES.DEBUG is signed with the TD report: a policy can hold it to false
    (a debuggable TD's memory is readable by the host)."""
    verdict = tdx_verdict()
    assert verdict.claims["debug"] is False
    assert appraise(verdict, "tdx", refs(tdx={"debug": False})).status == "verified"
    held = appraise(verdict, "tdx", refs(tdx={"debug": True}))
    assert (held.status, held.failure) == ("failed", "reference values")
    assert held.reason == "reference values: TD_ATTRIBUTES.DEBUG: expected true, found false"
    with pytest.raises(InputError, match="tdx.debug: expected a bool, found 'no'"):
        refs(tdx={"debug": "no"})


def test_collateral_from_before_a_tcb_recovery_can_be_refused() -> None:
    """A node may carry an older TCB info still inside its window: one from before Intel's
    last TCB recovery judges the platform by the levels before it. Its evaluation data
    number, signed with it, can be held to a floor."""
    verdict = tdx_verdict()
    assert verdict.claims["tcbEvaluationDataNumber"] == 17
    assert appraise(verdict, "tdx", refs(tdx={"minTcbEvaluationDataNumber": 17})).status \
        == "verified"
    held = appraise(verdict, "tdx", refs(tdx={"minTcbEvaluationDataNumber": 18}))
    assert (held.status, held.failure) == ("failed", "reference values")
    assert held.reason == ("reference values: TCB evaluation data number (TCB info and QE "
                           "identity): expected at least 18, found 17 (collateral from "
                           "before a TCB recovery)")
    with pytest.raises(InputError, match="minTcbEvaluationDataNumber: expected a "
                                         "non-negative integer, found '17'"):
        refs(tdx={"minTcbEvaluationDataNumber": "17"})


def test_a_register_the_quote_does_not_carry_fails_closed() -> None:
    # MRSERVICETD is in TD 1.5 report bodies only; quote-v4 carries a TD 1.0 body.
    held = appraise(tdx_verdict(), "tdx", refs(tdx={"mrtd": MRTD, "mrServiceTd": "00" * 48}))
    assert (held.status, held.failure) == ("failed", "reference values")
    assert held.reason == (f"reference values: MRSERVICETD: expected {'00' * 48}, found no "
                           "such register in the evidence")


def test_a_list_of_accepted_values_passes_on_any_of_them() -> None:
    held = appraise(tdx_verdict(), "tdx", refs(tdx={"rtmr1": [changed(RTMR[1]), RTMR[1]]}))
    assert held.status == "verified", held.reason
    held = appraise(tdx_verdict(), "tdx", refs(tdx={"rtmr1": [changed(RTMR[1])] * 2}))
    assert held.reason.startswith(f"reference values: RTMR1: expected one of "
                                  f"{changed(RTMR[1])}, {changed(RTMR[1])}, found {RTMR[1]}")


def test_only_verified_verdicts_are_held_to_reference_values() -> None:
    """A quote whose signature fails is returned as its failure, never as a match."""
    forged = QUOTE[:48 + 136] + bytes.fromhex(changed(MRTD)[:2]) + QUOTE[48 + 137:]
    verdict = verify_quote(forged, COLLATERAL, AT, None)
    held = appraise(verdict, "tdx", refs(tdx={"mrtd": changed(MRTD)[:2] + MRTD[2:]}))
    assert (held.status, held.failure) == ("failed", "signature")


# --- SEV-SNP --------------------------------------------------------------------------

@pytest.mark.parametrize(("vector", "measurement", "debug"), [
    (SNP_GO, GO_MEASUREMENT, True), (SNP_VIRTEE, VIRTEE_MEASUREMENT, False)])
def test_snp_reports_hold_their_measurement_and_policy(
        vector: tuple[bytes, bytes], measurement: str, debug: bool) -> None:
    verdict = verify_report(vector[0], vector[1], AT, None)
    # No real AMD CRL is public: "unverified" for want of one, which reference values
    # leave as it is; judged here as if a CRL had been carried (tests/unit/attest/
    # test_snp_crl.py shows the revocation check itself).
    assert verdict.status == "unverified", verdict.reason
    assert "no AMD CRL" in verdict.reason
    assert appraise(verdict, "snp", refs(snp={"measurement": measurement})) is verdict
    verdict = dataclasses.replace(verdict, status="verified", reason="")
    good = {"measurement": measurement, "policy": {"debug": debug, "migrateMa": False}}
    held = appraise(verdict, "snp", refs(snp=good))
    assert held.status == "verified", held.reason
    held = appraise(verdict, "snp", refs(snp={**good, "measurement": changed(measurement)}))
    assert (held.status, held.failure) == ("failed", "reference values")
    assert held.reason == (f"reference values: measurement: expected {changed(measurement)}, "
                           f"found {measurement}")
    held = appraise(verdict, "snp", refs(snp={**good, "policy": {"debug": not debug}}))
    assert held.reason == (f"reference values: policy.debug: expected "
                           f"{json.dumps(not debug)}, found {json.dumps(debug)}")


# --- NVIDIA SPDM ----------------------------------------------------------------------

def test_gpu_spdm_measurements_are_read_from_the_signed_response() -> None:
    found = measurements(GPU_REPORT)
    assert len(found) == 64
    assert found["2"].startswith("8048dfd18fe229bf")


def test_gpu_measurements_hold_and_one_changed_fails_naming_the_gpu_and_index() -> None:
    from slsa_dist.attest._nvidia import verify_report as gpu_verify

    verdict = gpu_verify(GPU_REPORT, GPU_CHAIN, b"", "", "", appraisal=Appraisal(
        at=AT, check_binding=False))
    # signed up to the pinned root, but the sample carries no RIMs nor OCSP answers, so its
    # verdict counts for nothing (test_nvidia_spdm.py shows a counted one on a synthetic
    # GPU); the registers it proves are held to reference values here as if it counted
    assert verdict.status == "unverified", verdict.reason
    assert verdict.root.startswith("NVIDIA Device Identity CA")
    assert "no OCSP answer carried" in verdict.reason
    assert "no RIMs carried" in verdict.reason
    assert appraise(verdict, "nvidia-cc", refs(nvidia_cc={"measurements": {"2": "00"}})) \
        is verdict  # reference values never make it count
    wrapped = EvidenceVerdict(status="verified", root=verdict.root,
                              claims={"gpus": [dict(verdict.claims)]})
    good = {"2": measurements(GPU_REPORT)["2"], "3": measurements(GPU_REPORT)["3"]}
    assert appraise(wrapped, "nvidia-cc", refs(nvidia_cc={"measurements": good})).status \
        == "verified"
    held = appraise(wrapped, "nvidia-cc", refs(nvidia_cc={"measurements": {
        **good, "3": changed(good["3"])}}))
    assert held.reason == (f"reference values: GPU 0 measurement 3: expected "
                           f"{changed(good['3'])}, found {good['3']}")
    held = appraise(wrapped, "nvidia-cc", refs(nvidia_cc={"measurements": {"99": "00"}}))
    assert held.reason == ("reference values: GPU 0 measurement 99: expected 00, found no "
                           "such register in the evidence")


# --- the file -------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    ({"tdx": {"mrtd": MRTD}}, 'expected an object with "version": 1, found None'),
    ({"version": 1, "sgx": {}}, "expected only tpm, tdx, snp, nvidia-cc (and version), "
                                "found 'sgx'"),
    ({"version": 1}, "expected registers of at least one of tpm, tdx, snp, nvidia-cc"),
    ({"version": 1, "tdx": {"rtrm0": RTMR[0]}}, "tdx: expected registers among MRTD, RTMR0"),
    ({"version": 1, "tdx": {"mrtd": MRTD[:-2]}}, "tdx.mrtd: expected 48 bytes of hex"),
    ({"version": 1, "tpm": {"pcrs": {"24": "00" * 32}}}, "expected PCR indices 0-23"),
    ({"version": 1, "tpm": {"pcrs": {"7": "00" * 20}}}, "tpm.pcrs.7: expected 32 bytes"),
    ({"version": 1, "tpm": {"sha1": {}}}, "tpm: expected only \"pcrs\""),
    ({"version": 1, "snp": {"policy": {"debug": "no"}}}, "snp.policy.debug: expected a bool"),
    ({"version": 1, "snp": {"policy": {"sev": True}}}, "snp.policy: expected one of debug"),
    ({"version": 1, "tdx": {"mrtd": []}}, "tdx.mrtd: expected at least one value"),
])
def test_a_malformed_file_is_refused_naming_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        ReferenceValues.from_json(data)
    assert message in str(caught.value)


def test_yaml_and_json_files_read_the_same(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    (tmp_path / "r.json").write_text(json.dumps({"version": 1, "tdx": {"MRTD": MRTD}}))
    (tmp_path / "r.yaml").write_text(f"version: 1\ntdx:\n  mrtd: \"{MRTD.upper()}\"\n")
    assert ReferenceValues.load(tmp_path / "r.json") == ReferenceValues.load(tmp_path / "r.yaml")
    assert PublicReferenceValues is ReferenceValues


# --- in a bundle ----------------------------------------------------------------------

def provenance(nodes: dict[str, tuple[EvidenceRecord, ...]]) -> Provenance:
    return with_evidence(nodes)


def tdx_record(claims: dict[str, object] | None = None) -> EvidenceRecord:
    blob = json.dumps({"provider": "tdx_guest", "outblob": base64.b64encode(QUOTE).decode(),
                       "collateral": base64.b64encode(COLLATERAL).decode()}).encode()
    return EvidenceRecord(kind="tdx", status="verified", blob=base64.b64encode(blob).decode(),
                          nonce="01" * 32, size=len(blob), claims=claims or {})


def unbound(e: EvidenceRecord, job: str, node: str) -> EvidenceVerdict:
    """``verify``'s re-appraisal of the raw evidence, the binding check off (see above)."""
    return reappraise(e, job_id=job, node_id=node, appraisal=Appraisal(
        at=AT, check_binding=False))


def test_verify_names_the_node_the_register_and_both_values() -> None:
    job = provenance({"node-a": (tdx_record(),), "node-b": (tdx_record(),)})
    check = require_attestation(job, "tdx", appraise=unbound,
                                reference_values=refs(tdx=TDX_VALUES))
    assert check.ok, check.detail
    assert check.name == "attestation tdx (reference values)"
    assert check.detail.endswith("holding the reference values (tdx)")
    check = require_attestation(job, "tdx", appraise=unbound, reference_values=refs(
        tdx={**TDX_VALUES, "rtmr2": changed(RTMR[2])}))
    assert not check.ok
    for node in ("node-a", "node-b"):
        assert f"{node} (tdx: verified up to Intel SGX Root CA (sha256:44a0196b" in check.detail
    assert (f"but failed (reference values): reference values: RTMR2: expected "
            f"{changed(RTMR[2])}, found {RTMR[2]})") in check.detail


def test_the_recorded_claims_are_never_what_is_compared() -> None:
    """The coordinator's record says the MRTD the policy wants; the signed quote does not."""
    wanted = changed(MRTD)
    job = provenance({"node-a": (tdx_record({"mrTd": wanted}),)})
    check = require_attestation(job, "tdx", appraise=unbound,
                                reference_values=refs(tdx={"mrtd": wanted}))
    assert not check.ok
    assert f"MRTD: expected {wanted}, found {MRTD}" in check.detail


def test_a_kind_the_policy_names_but_the_node_lacks_fails() -> None:
    tpm_only = EvidenceRecord(kind="tpm", status="verified")
    job = provenance({"node-a": (tpm_only,)})

    def verified(e: EvidenceRecord, job: str, node: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="verified", root="EK root", claims={"pcrs": {}})

    check = require_attestation(job, "tdx", appraise=verified,
                                reference_values=refs(tdx={"mrtd": MRTD}))
    assert not check.ok
    assert check.detail.endswith("found none for: node-a (no tdx evidence recorded)")
    check = require_attestation(job, "any", appraise=verified, ek_roots=(b"pem",),
                                reference_values=refs(tdx={"mrtd": MRTD}))
    assert not check.ok
    assert "node-a (tpm: verified, but the reference values name no tpm register" in \
        check.detail


def test_reference_values_must_name_the_kind_and_tpm_needs_a_trusted_key() -> None:
    with pytest.raises(InputError, match="expected registers of snp for an attestation snp"):
        Attestation("snp", reference_values=refs(tdx={"mrtd": MRTD}))
    with pytest.raises(InputError, match="expected --ek-roots or --trusted-aks with them"):
        Attestation("tpm", reference_values=refs(tpm={"pcrs": {"0": "00" * 32}}))
    Attestation("tpm", ek_roots=(b"pem",), reference_values=refs(tpm={"pcrs": {"0": "00" * 32}}))


# --- slsa-dist attest verify --reference-values ----------------------------------------

def test_attest_verify_with_reference_values(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    quote, collateral = tmp_path / "quote.bin", tmp_path / "collateral.json"
    quote.write_bytes(QUOTE)
    collateral.write_bytes(COLLATERAL)
    good, bad = tmp_path / "good.json", tmp_path / "bad.yaml"
    good.write_text(json.dumps({"version": 1, "tdx": TDX_VALUES}))
    bad.write_text(json.dumps({"version": 1, "tdx": {**TDX_VALUES, "mrtd": changed(MRTD)}}))
    args = ["attest", "verify", "--kind", "tdx", str(quote), "--collateral", str(collateral),
            "--at", "2025-06-20T12:00:00Z", "--reference-values"]
    assert cli_main([*args, str(good)]) == 0
    assert "verified: MRTD, RTMR0, RTMR1, RTMR2, RTMR3 equal the reference values" in \
        capsys.readouterr().out
    assert cli_main([*args, str(bad)]) == 1
    assert f"reason: reference values: MRTD: expected {changed(MRTD)}, found {MRTD}" in \
        capsys.readouterr().out
