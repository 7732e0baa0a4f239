"""Real, vendor-signed evidence (tests/assets/vectors/hw, SOURCE.md) verified up to the
pinned vendor roots, offline: TDX quotes to the Intel SGX Root CA, SEV-SNP reports to
AMD's ARK of their product (no real AMD CRL is public, so these stay "unverified", the
CRL named). One bit changed in the evidence, a certificate or the
collateral fails, named by kind; and since these vectors were not made for our jobs,
their report data is a "binding mismatch", told apart from a signature failure."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from slsa_dist.attest import _roots
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._snp import verify_report
from slsa_dist.attest._tdx import verify_quote
from slsa_dist.attest._tsm import verify as tsm_verify
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict
from slsa_dist.cli import main as cli_main

HW = Path(__file__).resolve().parents[2] / "assets" / "vectors" / "hw"
QUOTE = (HW / "tdx" / "quote-v4.bin").read_bytes()
COLLATERAL = (HW / "tdx" / "quote-v4.collateral.json").read_bytes()
# Inside the collateral's validity (TCB info and QE identity issued 2025-06-19, next
# update 2025-07-19); the SNP vectors' certificates are valid from 2022 to 2029.
AT = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)
BINDING = report_data(b"\x01" * 32, "job-1", "node-a", size=64)
SNP = {
    "go-sev-guest": ((HW / "snp" / "go-sev-guest-milan.report.bin").read_bytes(),
                     (HW / "snp" / "go-sev-guest-milan.vcek.der").read_bytes()),
    "virtee": (bytes.fromhex((HW / "snp" / "virtee-milan.report.hex").read_text().strip()),
               (HW / "snp" / "virtee-milan.vcek.der").read_bytes()),
}
INTEL = "Intel SGX Root CA (sha256:44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3)"
MILAN = "AMD ARK-Milan (sha256:69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd)"


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def test_every_pinned_root_is_the_certificate_its_fingerprint_names() -> None:
    pems = {"Intel SGX Root CA": _roots.INTEL_SGX_ROOT,
            "NVIDIA Device Identity CA": _roots.NVIDIA_DEVICE_ROOT,
            "NVIDIA CoRIM signing Root CA": _roots.NVIDIA_RIM_ROOT,
            **{f"AMD ARK-{p}": pem for p, pem in _roots.AMD_ARK.items()}}
    assert set(pems) == set(_roots.ROOT_FINGERPRINTS)
    for name, pem in pems.items():
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
        assert hashlib.sha256(der).hexdigest() == _roots.ROOT_FINGERPRINTS[name], name


# --- TDX ------------------------------------------------------------------------------

def test_tdx_quote_v4_verifies_to_the_intel_sgx_root_with_its_tcb_status() -> None:
    verdict = verify_quote(QUOTE, COLLATERAL, AT, None)
    assert verdict.status == "verified", verdict.reason
    assert verdict.root == INTEL
    assert verdict.as_of == AT.isoformat()
    assert (verdict.tcb_status, tuple(verdict.advisory_ids)) == ("UpToDate", ())
    assert any("QE report data = SHA-256(attestation key || QE auth data)" in v
               for v in verdict.verified)
    assert any("binding" in n for n in verdict.not_verified)


def test_tdx_quote_made_for_another_job_is_a_binding_mismatch_not_a_forgery() -> None:
    verdict = verify_quote(QUOTE, COLLATERAL, AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", "binding mismatch")
    assert verdict.root == INTEL  # everything up to the root held
    assert verdict.tcb_status == "UpToDate"


def test_tdx_quote_agrees_with_phala_dcap_qvl() -> None:
    qvl = pytest.importorskip("dcap_qvl")
    for name, at in (("quote-v4", AT), ("quote-v4-outdated",
                                        dt.datetime(2026, 2, 19, 12, tzinfo=dt.timezone.utc))):
        quote = (HW / "tdx" / f"{name}.bin").read_bytes()
        collateral = (HW / "tdx" / f"{name}.collateral.json").read_bytes()
        ours = verify_quote(quote, collateral, at, None)
        theirs: object = None
        try:
            theirs = qvl.verify(quote, qvl.QuoteCollateralV3.from_json(collateral.decode()),
                                int(at.timestamp()))
        except ValueError as exc:  # dcap-qvl: "No matching TCB level found"
            theirs = str(exc)
        if isinstance(theirs, str):
            assert "No matching TCB level" in theirs
            assert ours.failure == "tcb"
            assert "no TCB level matches" in ours.reason
        else:
            assert ours.tcb_status == theirs.status  # type: ignore[attr-defined]
            assert list(ours.advisory_ids) == list(theirs.advisory_ids)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("offset", "failure"), [
    (48 + 136, "signature"),        # MRTD in the TD report body: the quote's signature
    (48 + 520, "signature"),        # report data: signed, so a signature failure first
    (4, "malformed"),               # attestation key type in the header
    (636 + 64 + 5, "signature"),    # the attestation key: the QE no longer vouches for it
    (636 + 128 + 6 + 300, "signature"),  # the QE report: the PCK key's signature
])
def test_one_bit_changed_in_the_tdx_quote_fails_by_kind(offset: int, failure: str) -> None:
    verdict = verify_quote(flip(QUOTE, offset), COLLATERAL, AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", failure), verdict.reason


def test_one_bit_changed_in_the_pck_certificate_fails_the_chain() -> None:
    match = re.search(rb"-----BEGIN CERTIFICATE-----\n(.*?)-----END", QUOTE, re.S)
    assert match is not None
    der = base64.b64decode(match.group(1))
    text = base64.b64encode(flip(der, 200))  # inside the to-be-signed certificate
    changed = b"".join(text[i:i + 64] + b"\n" for i in range(0, len(text), 64))
    quote = QUOTE.replace(match.group(1), changed)
    assert len(quote) == len(QUOTE)
    verdict = verify_quote(quote, COLLATERAL, AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain"), verdict.reason


@pytest.mark.parametrize("field", ["tcb_info", "qe_identity"])
def test_one_bit_changed_in_the_signed_collateral_fails(field: str) -> None:
    data = json.loads(COLLATERAL)
    text = data[field]
    middle = len(text) // 2
    data[field] = text[:middle] + chr(ord(text[middle]) ^ 1) + text[middle + 1:]
    verdict = verify_quote(QUOTE, json.dumps(data).encode(), AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", "collateral"), verdict.reason
    assert "signature not valid" in verdict.reason


def test_one_bit_changed_in_a_collateral_crl_fails() -> None:
    data = json.loads(COLLATERAL)
    crl = bytes.fromhex(data["pck_crl"])
    data["pck_crl"] = flip(crl, len(crl) - 10).hex()  # in the CRL's signature
    verdict = verify_quote(QUOTE, json.dumps(data).encode(), AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain"), verdict.reason


def test_tdx_collateral_past_its_next_update_is_not_current() -> None:
    verdict = verify_quote(QUOTE, COLLATERAL, dt.datetime(2025, 8, 1, tzinfo=dt.timezone.utc),
                           None)
    assert verdict.status == "failed"
    assert verdict.failure in ("collateral", "certificate chain")


def test_tdx_evidence_carrying_its_collateral_verifies_through_the_attester() -> None:
    blob = json.dumps({"provider": "tdx_guest", "outblob": base64.b64encode(QUOTE).decode(),
                       "collateral": base64.b64encode(COLLATERAL).decode()}).encode()
    verdict = tsm_verify(blob, b"\x01" * 32, "job-1", "node-a", appraisal=Appraisal(at=AT))
    assert (verdict.failure, verdict.root) == ("binding mismatch", INTEL)
    without = json.dumps({"provider": "tdx_guest",
                          "outblob": base64.b64encode(QUOTE).decode()}).encode()
    bare = tsm_verify(without, b"\x01" * 32, "job-1", "node-a", appraisal=Appraisal(at=AT))
    assert bare.failure == "binding mismatch"
    assert not bare.root  # no collateral: nothing verified up to a root


# --- SEV-SNP --------------------------------------------------------------------------

def no_crl(verdict: EvidenceVerdict, product: str = "Milan", signer: str = "VCEK") -> None:
    """Everything but revocation held: no real AMD CRL is public as a test vector, so the
    real reports are "unverified", naming the CRL, with the chain to the pinned ARK in
    ``verified`` (the revocation path is shown with a test PKI: test_snp_crl.py)."""
    assert verdict.status == "unverified", verdict.reason
    middle = "ASK" if signer == "VCEK" else "ASVK"
    assert verdict.reason == (f"not verified: revocation of the {middle} and the {signer} "
                              f"(no AMD CRL of ARK-{product}, KDS /{signer.lower()}/v1/"
                              f"{product}/crl, carried or supplied)")
    assert verdict.verified[0].startswith(f"{signer} -> {middle} -> pinned AMD ARK-{product}")
    assert verdict.reason.removeprefix("not verified: ") in verdict.not_verified
    assert verdict.root.startswith(f"AMD ARK-{product} (sha256:")
    assert verdict.as_of


@pytest.mark.parametrize("name", sorted(SNP))
def test_snp_report_verifies_to_amds_milan_root(name: str) -> None:
    report, vcek = SNP[name]
    verdict = verify_report(report, vcek, AT, None)
    no_crl(verdict)
    assert verdict.root == MILAN
    assert verdict.claims["product"] == "Milan"
    assert verdict.claims["measurement"] == report[0x90:0xC0].hex()
    assert "debug" in verdict.claims["policy"]


@pytest.mark.parametrize("name", sorted(SNP))
def test_snp_report_made_for_another_job_is_a_binding_mismatch(name: str) -> None:
    report, vcek = SNP[name]
    verdict = verify_report(report, vcek, AT, BINDING)
    assert (verdict.status, verdict.failure, verdict.root) == ("failed", "binding mismatch",
                                                               MILAN)


@pytest.mark.parametrize(("offset", "failure"), [
    (0x90, "signature"),     # measurement
    (0x50, "signature"),     # report data
    (0x180, "signature"),    # reported TCB
    (0x2A0 + 3, "signature"),  # the signature itself
    (0x34, "malformed"),     # signature algorithm
])
def test_one_bit_changed_in_the_snp_report_fails_by_kind(offset: int, failure: str) -> None:
    report, vcek = SNP["virtee"]
    verdict = verify_report(flip(report, offset), vcek, AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", failure), verdict.reason


def test_one_bit_changed_in_the_vcek_fails_the_chain() -> None:
    report, vcek = SNP["virtee"]
    verdict = verify_report(report, flip(vcek, 300), AT, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain"), verdict.reason


def test_a_genuine_vcek_of_another_chip_does_not_verify_the_report() -> None:
    report, _ = SNP["virtee"]
    verdict = verify_report(report, SNP["go-sev-guest"][1], AT, None)
    assert (verdict.status, verdict.failure) == ("failed", "signature")


def test_snp_vcek_outside_its_validity_fails() -> None:
    report, vcek = SNP["virtee"]
    verdict = verify_report(report, vcek, dt.datetime(2040, 1, 1, tzinfo=dt.timezone.utc),
                            None)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")


# --- the stand-alone command ----------------------------------------------------------

def test_attest_verify_prints_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["attest", "verify", "--kind", "tdx", str(HW / "tdx" / "quote-v4.bin"),
                     "--collateral", str(HW / "tdx" / "quote-v4.collateral.json"),
                     "--at", "2025-06-20T12:00:00Z"])
    out = capsys.readouterr().out
    assert code == 0
    assert "status: verified" in out
    assert f"root: {INTEL}" in out
    assert "TCB status: UpToDate" in out
    code = cli_main(["attest", "verify", "--kind", "snp",
                     str(HW / "snp" / "virtee-milan.report.hex"), "--collateral",
                     str(HW / "snp" / "virtee-milan.vcek.der"), "--at", "2025-06-20T12:00:00Z",
                     "--nonce", "01" * 32, "--job", "job-1", "--node", "node-a", "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (verdict["status"], verdict["failure"], verdict["root"]) == (
        "failed", "binding mismatch", MILAN)


# --- TDX quote v5 (TD 1.5), SNP Turin and VLEK chains ---------------------------------

# go-tdx-guest's v5 quote (PCK issued 2026-01-27, FMSPC 90C06F000000) with Intel's TCB
# info for its FMSPC as the PCS answered it (issued 2026-02-01, next update 2026-03-03);
# the QE identity, CRLs and issuer chains are Intel's from dcap-qvl's sample fetched
# 2026-02-18 (FMSPC-independent): each piece Intel-signed, assembled here.
QUOTE_V5 = (HW / "tdx" / "quote-v5.bin").read_bytes()
AT_V5 = dt.datetime(2026, 2, 19, 12, tzinfo=dt.timezone.utc)
TURIN = "AMD ARK-Turin (sha256:1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a)"


def collateral_v5() -> bytes:
    from slsa_dist.attest._collateral import pcs_signed_json

    tcb_info, signature = pcs_signed_json(
        (HW / "tdx" / "quote-v5.tcbinfo-response.json").read_bytes(), "tcbInfo")
    data = json.loads((HW / "tdx" / "quote-v4-outdated.collateral.json").read_bytes())
    return json.dumps({**data, "tcb_info": tcb_info,
                       "tcb_info_signature": signature}).encode()


def test_tdx_quote_v5_verifies_to_the_intel_root_with_its_td15_fields() -> None:
    verdict = verify_quote(QUOTE_V5, collateral_v5(), AT_V5, None)
    assert verdict.status == "verified", verdict.reason
    assert (verdict.root, verdict.tcb_status, tuple(verdict.advisory_ids)) == (
        INTEL, "UpToDate", ())
    assert verdict.claims["quoteVersion"] == 5
    assert verdict.claims["teeTcbSvn2"] == "0d010400000000000000000000000000"
    assert verdict.claims["mrServiceTd"] == "00" * 48
    assert verdict.claims["fmspc"] == "90C06F000000"
    assert any("TDX module identity and TCB level: UpToDate" in v for v in verdict.verified)


def test_tdx_quote_v5_agrees_with_phala_dcap_qvl() -> None:
    qvl = pytest.importorskip("dcap_qvl")
    theirs = qvl.verify(QUOTE_V5, qvl.QuoteCollateralV3.from_json(collateral_v5().decode()),
                        int(AT_V5.timestamp()))
    ours = verify_quote(QUOTE_V5, collateral_v5(), AT_V5, None)
    assert (ours.tcb_status, list(ours.advisory_ids)) == (theirs.status,
                                                          list(theirs.advisory_ids))


@pytest.mark.parametrize(("offset", "failure"), [
    (48 + 6 + 136, "signature"),    # MRTD
    (48 + 6 + 600, "signature"),    # MRSERVICETD, a TD 1.5 field: signed too
    (48 + 6 + 584, "signature"),    # TEE_TCB_SVN2
    (48, "malformed"),              # the body descriptor's type
])
def test_one_bit_changed_in_the_tdx_quote_v5_fails_by_kind(offset: int, failure: str) -> None:
    verdict = verify_quote(flip(QUOTE_V5, offset), collateral_v5(), AT_V5, BINDING)
    assert (verdict.status, verdict.failure) == ("failed", failure), verdict.reason


def test_tdx_quote_v5_tampered_collateral_and_binding_are_told_apart() -> None:
    data = json.loads(collateral_v5())
    data["tcb_info"] = data["tcb_info"].replace('"UpToDate"', '"UpToDatf"', 1)
    tampered = verify_quote(QUOTE_V5, json.dumps(data).encode(), AT_V5, BINDING)
    assert (tampered.status, tampered.failure) == ("failed", "collateral")
    mismatch = verify_quote(QUOTE_V5, collateral_v5(), AT_V5, BINDING)
    assert (mismatch.failure, mismatch.root) == ("binding mismatch", INTEL)


def test_attest_verify_prints_the_v5_verdict(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.json").write_bytes(collateral_v5())
    code = cli_main(["attest", "verify", "--kind", "tdx", str(HW / "tdx" / "quote-v5.bin"),
                     "--collateral", str(tmp_path / "c.json"), "--at", AT_V5.isoformat()])
    out = capsys.readouterr().out
    assert code == 0, out
    assert (f"root: {INTEL}" in out, "TCB status: UpToDate" in out) == (True, True)
    (tmp_path / "q.bin").write_bytes(flip(QUOTE_V5, 48 + 6 + 600))  # one bit of MRSERVICETD
    code = cli_main(["attest", "verify", "--kind", "tdx", str(tmp_path / "q.bin"),
                     "--collateral", str(tmp_path / "c.json"), "--at", AT_V5.isoformat()])
    out = capsys.readouterr().out
    assert (code, "status: failed (signature)" in out) == (1, True), out
    code = cli_main(["attest", "verify", "--kind", "tdx", str(HW / "tdx" / "quote-v5.bin"),
                     "--collateral", str(tmp_path / "c.json"), "--at", AT_V5.isoformat(),
                     "--nonce", "01" * 32, "--job", "job-1", "--node", "node-a"])
    out = capsys.readouterr().out
    assert (code, "status: failed (binding mismatch)" in out) == (1, True), out


def test_a_turin_vcek_chains_to_the_pinned_turin_ark() -> None:
    from slsa_dist.attest._pki import load_certificates, root_label
    from slsa_dist.attest._snp import _chain

    vcek = (HW / "snp" / "virtee-turin.vcek.der").read_bytes()
    chain = (HW / "snp" / "virtee-turin.cert_chain.pem").read_bytes()
    certs = load_certificates(vcek) + load_certificates(chain)
    product, _, _, ark = _chain(certs, AT)
    assert (product, root_label("AMD ARK-Turin", ark)) == ("Turin", TURIN)
    # No Turin report is public: one with its hwID and TCB but a self-made signature
    # must fail on the signature, after the chain held.
    report = bytearray(0x4A0)
    report[0:4] = (3).to_bytes(4, "little")
    report[0x34] = 1  # ECDSA P-384 with SHA-384
    report[0x188:0x18A] = bytes([0x1A, 0x02])  # Turin's CPUID family and model
    pem = certs[0].public_bytes(Encoding.PEM) + chain
    verdict = verify_report(bytes(report), pem, AT, None)
    assert (verdict.status, verdict.failure) == ("failed", "signature"), verdict.reason
    assert any("pinned AMD ARK-Turin" in v for v in verdict.verified)


def test_a_vlek_signed_report_needs_a_vlek_chained_through_an_asvk() -> None:
    from slsa_dist.attest._pki import fingerprint, load_certificates, verify_issued_by
    from slsa_dist.attest._snp import _chain

    asvk = (HW / "snp" / "go-sev-guest-milan.asvk.pem").read_bytes()
    report = bytearray(SNP["virtee"][0])
    report[0x48] |= 1 << 2  # SIGNING_KEY = 1: the VLEK
    # The VCEK is not a VLEK: refused as such, before any signature is tried.
    verdict = verify_report(bytes(report), SNP["virtee"][1], AT, None)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    assert "certificate given is a SEV-VCEK" in verdict.reason
    # AMD's Milan ASVK is signed by the pinned Milan ARK: a VLEK it signed would chain.
    found, ark = load_certificates(asvk)
    assert found.subject.rfc4514_string().startswith("CN=SEV-VLEK-Milan")
    assert fingerprint(ark) == _roots.ROOT_FINGERPRINTS["AMD ARK-Milan"]
    verify_issued_by(found, ark, AT)
    # Without the VLEK itself, the ASVK must not pass for it (it is a CA certificate).
    with pytest.raises(Exception, match="found the CA certificate 'SEV-VLEK-Milan'"):
        _chain([found, ark], AT, "vlek")
    verdict = verify_report(bytes(report), asvk, AT, None)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")


GENOA = "AMD ARK-Genoa (sha256:4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1)"
GENOA_REPORT = (HW / "snp" / "trustee-azure-genoa.report.bin").read_bytes()
GENOA_VCEK = (HW / "snp" / "trustee-azure-genoa.vcek.pem").read_bytes()
VLEK_REPORT = (HW / "snp" / "trustee-milan-vlek.report.bin").read_bytes()
VLEK_CHAIN = (HW / "snp" / "trustee-milan-vlek.vlek.der").read_bytes()


def vlek_collateral() -> bytes:
    from slsa_dist.attest._pki import load_certificates

    vlek = load_certificates(VLEK_CHAIN)[0].public_bytes(Encoding.PEM)
    return vlek + (HW / "snp" / "go-sev-guest-milan.asvk.pem").read_bytes()


def test_an_azure_genoa_report_verifies_to_the_genoa_ark() -> None:
    verdict = verify_report(GENOA_REPORT, GENOA_VCEK, AT, None)
    no_crl(verdict, "Genoa")
    assert (verdict.root, verdict.claims["product"]) == (GENOA, "Genoa")
    assert verdict.claims["cpuid"]["model"] == 0x11
    assert set(verdict.claims["reportedTcb"]) == {"bootLoader", "tee", "snp", "microcode"}
    assert any("VCEK issued for this chip and the reported TCB" in v for v in verdict.verified)
    mismatch = verify_report(GENOA_REPORT, GENOA_VCEK, AT, BINDING)
    assert (mismatch.failure, mismatch.root) == ("binding mismatch", GENOA)


@pytest.mark.parametrize(("offset", "failure"), [
    (0x90, "signature"),            # measurement
    (0x188, "certificate chain"),   # CPUID family: no longer a Genoa, its ARK's product
    (0x2A0 + 9, "signature")])
def test_one_bit_changed_in_the_genoa_report_fails(offset: int, failure: str) -> None:
    verdict = verify_report(flip(GENOA_REPORT, offset), GENOA_VCEK, AT, None)
    assert (verdict.status, verdict.failure) == ("failed", failure), verdict.reason


def test_a_vcek_for_another_tcb_is_refused_even_with_a_valid_signature() -> None:
    # REPORTED_TCB is signed, so a changed one fails on the signature first; the VCEK's
    # SPL check is reached with a VCEK of the same key but another TCB, which AMD never
    # issues: shown by the check itself against the Genoa report's fields.
    from slsa_dist.attest._pki import load_certificates
    from slsa_dist.attest._snp import _FailError, _issued_for

    vcek = load_certificates(GENOA_VCEK)[0]
    assert _issued_for(vcek, GENOA_REPORT, "Genoa", "vcek")
    other = bytearray(GENOA_REPORT)
    other[0x180] += 1  # boot loader SPL
    with pytest.raises(_FailError, match="issued for bootLoader SPL"):
        _issued_for(vcek, bytes(other), "Genoa", "vcek")
    other = bytearray(GENOA_REPORT)
    other[0x1A0] ^= 1  # another chip
    with pytest.raises(_FailError, match="issued for another chip"):
        _issued_for(vcek, bytes(other), "Genoa", "vcek")


def test_attest_verify_takes_the_vlek_in_der_beside_the_asvk_in_pem(
        capsys: pytest.CaptureFixture[str]) -> None:
    """As a user passes them: one file per certificate, in the encoding it came in."""
    code = cli_main(["attest", "verify", "--kind", "snp", str(HW / "snp" /
                     "trustee-milan-vlek.report.bin"),
                     "--collateral", str(HW / "snp" / "trustee-milan-vlek.vlek.der"),
                     "--collateral", str(HW / "snp" / "go-sev-guest-milan.asvk.pem"),
                     "--at", AT.isoformat()])
    out = capsys.readouterr().out
    assert (code, "status: unverified" in out) == (1, True), out  # no AMD CRL: not counted
    assert "root: AMD ARK-Milan" in out, out
    code = cli_main(["attest", "verify", "--kind", "snp", str(HW / "snp" /
                     "trustee-milan-vlek.report.bin"),
                     "--collateral", str(HW / "snp" / "trustee-milan-vlek.vlek.der"),
                     "--collateral", str(HW / "snp" / "go-sev-guest-milan.asvk.pem"),
                     "--at", "2026-01-01T00:00:00+00:00"])
    out = capsys.readouterr().out  # the VLEK expired 2025-12-10: its own chain's error
    assert ("Milan: CN=SEV-VLEK" in out, "2025-12-10" in out) == (True, True), out


def test_a_vlek_signed_report_verifies_through_the_asvk_to_the_milan_ark() -> None:
    verdict = verify_report(VLEK_REPORT, vlek_collateral(), AT, None)
    no_crl(verdict, signer="VLEK")
    assert verdict.root == MILAN
    assert verdict.claims["signingKey"] == "vlek"
    assert "amazonaws.com" in verdict.claims["cspId"]
    assert verdict.verified[0].startswith("VLEK -> ASVK -> pinned AMD ARK-Milan")
    # without the ASVK: no chain (none is pinned); one bit in the VLEK: no chain either
    alone = verify_report(VLEK_REPORT, vlek_collateral()[:1900], AT, None)
    assert alone.status == "failed"
    bent = verify_report(VLEK_REPORT, flip(VLEK_CHAIN, 400), AT, None)
    assert (bent.status, bent.failure) == ("failed", "certificate chain")
    tampered = verify_report(flip(VLEK_REPORT, 0x90), vlek_collateral(), AT, None)
    assert (tampered.status, tampered.failure) == ("failed", "signature")


def test_attest_verify_prints_the_genoa_and_vlek_verdicts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "vlek.pem").write_bytes(vlek_collateral())
    for report, collateral, root in (
            (HW / "snp" / "trustee-azure-genoa.report.bin",
             HW / "snp" / "trustee-azure-genoa.vcek.pem", GENOA),
            (HW / "snp" / "trustee-milan-vlek.report.bin", tmp_path / "vlek.pem", MILAN)):
        code = cli_main(["attest", "verify", "--kind", "snp", str(report), "--collateral",
                         str(collateral), "--at", "2025-06-20T12:00:00Z"])
        out = capsys.readouterr().out
        # up to the root, but no AMD CRL: not verified, and the exit code says so
        assert (code, f"root: {root}" in out, "status: unverified" in out) == (1, True, True), out
        assert "reason: not verified: revocation of the AS" in out, out


def test_reference_values_can_name_the_td15_mrservicetd_of_a_v5_quote() -> None:
    from slsa_dist.attest._reference import ReferenceValues, appraise

    verdict = verify_quote(QUOTE_V5, collateral_v5(), AT_V5, None)
    mr_td = QUOTE_V5[48 + 6 + 136:48 + 6 + 184].hex()  # read from the bytes, not our parser
    wanted = {"version": 1, "tdx": {"mrTd": mr_td, "mrServiceTd": "00" * 48}}
    assert appraise(verdict, "tdx", ReferenceValues.from_json(wanted)).status == "verified"
    wanted["tdx"]["mrServiceTd"] = "11" * 48
    held = appraise(verdict, "tdx", ReferenceValues.from_json(wanted))
    assert (held.status, held.failure) == ("failed", "reference values")
    assert held.reason.startswith("reference values: MRSERVICETD: expected 1111")
