"""Which collateral the node asks for: KDS paths from an SNP report (Turin's 8-byte hwID
and FMC SPL), the VCEK picked from a directory, Intel's signed JSON cut from a PCS answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.attest._collateral import kds_path, pcs_signed_json, snp_collateral, snp_crl
from slsa_dist.attest._pki import load_certificates
from slsa_dist.attest._snp import vcek_matches
from slsa_dist.errors import InputError

HW = Path(__file__).resolve().parents[2] / "assets" / "vectors" / "hw"
TURIN_VCEK = (HW / "snp" / "virtee-turin.vcek.der").read_bytes()
TURIN_HWID = "1e550a8ee5cf9f4d"  # the VCEK's hwID extension: 8 bytes on Turin


def turin_report(ucode: int = 9) -> bytes:
    """A version-3 Turin-shaped report for the chip and TCB the real Turin VCEK names."""
    report = bytearray(0x4A0)
    report[0:4] = (3).to_bytes(4, "little")
    report[0x34] = 1
    report[0x180:0x188] = bytes([0, 0, 0, 0, 0, 0, 0, ucode])  # FMC, BL, TEE, SNP ... ucode
    report[0x188:0x18A] = bytes([0x1A, 0x02])
    report[0x1A0:0x1A8] = bytes.fromhex(TURIN_HWID)
    return bytes(report)


def test_turin_kds_path_names_8_bytes_of_chip_id_and_the_fmc_spl() -> None:
    assert kds_path(turin_report(), "Turin") == (
        f"/vcek/v1/Turin/{TURIN_HWID}?fmcSPL=0&blSPL=0&teeSPL=0&snpSPL=0&ucodeSPL=9")


def test_the_real_turin_vcek_matches_only_its_own_tcb() -> None:
    (vcek,) = load_certificates(TURIN_VCEK)
    assert vcek_matches(vcek, turin_report())
    assert not vcek_matches(vcek, turin_report(ucode=8))  # another microcode SPL
    other_chip = bytearray(turin_report())
    other_chip[0x1A0] ^= 1
    assert not vcek_matches(vcek, bytes(other_chip))


def test_the_node_picks_the_matching_vcek_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a-milan.der").write_bytes((HW / "snp" / "virtee-milan.vcek.der").read_bytes())
    (tmp_path / "turin.der").write_bytes(TURIN_VCEK)
    (tmp_path / "chain.pem").write_bytes((HW / "snp" / "virtee-turin.cert_chain.pem")
                                         .read_bytes())
    (tmp_path / "notes.txt").write_text("not a certificate")
    found, source = snp_collateral(turin_report(), {"SLSA_SNP_COLLATERAL_DIR": str(tmp_path)})
    certs = load_certificates(found)
    assert [c.subject.rfc4514_string().split(",")[0] for c in certs] == [
        "CN=SEV-VCEK", "CN=SEV-Turin", "CN=ARK-Turin"]
    assert source == f"dir:{tmp_path}"
    with pytest.raises(InputError, match="expected a VCEK for this chip and REPORTED_TCB"):
        snp_collateral(turin_report(ucode=8), {"SLSA_SNP_COLLATERAL_DIR": str(tmp_path)})


def test_fetching_can_be_turned_off_and_says_so() -> None:
    with pytest.raises(InputError, match="SLSA_SNP_KDS_URL=none"):
        snp_collateral(turin_report(), {"SLSA_SNP_KDS_URL": "none"})
    with pytest.raises(InputError, match="expected http:// or https://"):
        snp_collateral(turin_report(), {"SLSA_SNP_KDS_URL": "file:///etc"})


def test_the_crl_is_the_one_of_the_product_the_vcek_names(tmp_path: Path) -> None:
    from support.amd_pki import shared

    env = {"SLSA_SNP_KDS_URL": "none"}
    # the real Turin VCEK names Turin (issuer SEV-Turin): Turin's CRL, from the directory
    with pytest.raises(InputError, match="expected AMD's CRL of ARK-Turin"):
        snp_crl(turin_report(), "vcek", TURIN_VCEK, {"SLSA_SNP_COLLATERAL_DIR": str(tmp_path)})
    with pytest.raises(InputError, match="SLSA_SNP_KDS_URL=none"):
        snp_crl(turin_report(), "vcek", TURIN_VCEK, env)
    # no VCEK, and a version-2 report could be a Milan's or a Genoa's: no guess
    v2 = bytearray(turin_report())
    v2[0:4] = (2).to_bytes(4, "little")
    with pytest.raises(InputError, match="could be from a Milan or a Genoa"):
        snp_crl(bytes(v2), "vcek", b"", env)
    pki = shared()  # a Milan test PKI: its CRL picked by issuer among other files
    crl = pki.crl()
    (tmp_path / "milan.crl").write_bytes(crl)
    (tmp_path / "x.pem").write_text("no CRL")
    found, source = snp_crl(bytes(v2), "vcek", pki.collateral,
                            {"SLSA_SNP_COLLATERAL_DIR": str(tmp_path)})
    assert (found, source) == (crl, f"dir:{tmp_path}")


def test_a_pcs_answer_keeps_the_signed_bytes_exactly() -> None:
    body = b'{"enclaveIdentity":{"id":"TD_QE","x":[1,2]},"signature":"0a1b"}'
    assert pcs_signed_json(body, "enclaveIdentity") == ('{"id":"TD_QE","x":[1,2]}', "0a1b")
    with pytest.raises(InputError, match="expected a JSON object with 'tcbInfo'"):
        pcs_signed_json(b"[1, 2]", "tcbInfo")
