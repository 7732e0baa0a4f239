"""TDX and SEV-SNP collateral fetched on the node at job time, carried in the evidence.

A fake configfs-tsm (the kernel's side: mkdir makes an entry whose ``outblob`` is a real,
vendor-signed report) feeds the node's real collection path; a real HTTP server on
loopback answers as Intel's PCS / a PCCS (pckcrl, tcb, qe/identity with their issuer
chains in headers, rootcacrl) and AMD's KDS (vcek, cert_chain, crl) with the vectors'
collateral (tests/assets/vectors/hw). The evidence must then verify offline to the
vendor's root with the expected TCB status, and a byte changed in what the server
served must fail. The vectors answer no slsa-dist job, so with a binding to check the
verdict is a "binding mismatch" up to the root, told apart from a forgery.

No real AMD CRL is public, so the real SNP vectors are served without one (the KDS
answers 404): carried without a CRL, they verify to "unverified", naming it. The CRL
path is shown end to end with the test PKI of tests/support/amd_pki.py (its ARK pinned
for the test): a report signed by its VCEK, the KDS serving its VCEK, chain and CRL.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pathlib
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.attest import _registry
from slsa_dist.attest import _tsm as tsm
from slsa_dist.attest._collateral import kds_path, pcs_signed_json
from slsa_dist.attest._roots import AMD_ARK, AMD_ASK
from slsa_dist.attest._verdict import UNAVAILABLE, Appraisal

from conftest import need
from support.amd_pki import AmdPki, shared

HW = Path(__file__).resolve().parents[1] / "assets" / "vectors" / "hw"
QUOTE = (HW / "tdx" / "quote-v4.bin").read_bytes()
TDX_COLLATERAL = json.loads((HW / "tdx" / "quote-v4.collateral.json").read_bytes())
AT = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)
GENOA_REPORT = (HW / "snp" / "trustee-azure-genoa.report.bin").read_bytes()
GENOA_VCEK_PEM = (HW / "snp" / "trustee-azure-genoa.vcek.pem").read_bytes()
INTEL = "Intel SGX Root CA (sha256:44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3)"
MILAN_ROOT = "AMD ARK-Milan (sha256:69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd)"
GENOA = "AMD ARK-Genoa (sha256:4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1)"
NONCE = b"\x05" * 32
ENV = ("SLSA_TDX_COLLATERAL_URL", "SLSA_TDX_COLLATERAL_DIR", "SLSA_SNP_KDS_URL",
       "SLSA_SNP_COLLATERAL_DIR")

pytestmark = pytest.mark.timeout(120)


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    from slsa_dist.attest._pki import load_certificates

    return load_certificates(pem)[0].public_bytes(Encoding.DER)


def vendor_answers(tamper: str = "") -> dict[str, tuple[bytes, dict[str, str]]]:
    """Path (and query) -> (body, headers), as Intel's PCS/PCCS and AMD's KDS answer.
    ``tamper``: the path whose body gets one byte changed."""
    c = TDX_COLLATERAL
    quoted = {k: urllib.parse.quote(c[k]) for k in
              ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")}
    fmspc = json.loads(c["tcb_info"])["fmspc"]
    hwid = GENOA_REPORT[0x1A0:0x1E0].hex()
    tcb = GENOA_REPORT[0x180:0x188]
    answers = {
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der": (
            bytes.fromhex(c["pck_crl"]),
            {"SGX-PCK-CRL-Issuer-Chain": quoted["pck_crl_issuer_chain"]}),
        f"/tdx/certification/v4/tcb?fmspc={fmspc}": (
            b'{"tcbInfo":' + c["tcb_info"].encode() + b',"signature":"'
            + c["tcb_info_signature"].encode() + b'"}',
            {"TCB-Info-Issuer-Chain": quoted["tcb_info_issuer_chain"]}),
        "/tdx/certification/v4/qe/identity": (
            b'{"enclaveIdentity":' + c["qe_identity"].encode() + b',"signature":"'
            + c["qe_identity_signature"].encode() + b'"}',
            {"SGX-Enclave-Identity-Issuer-Chain": quoted["qe_identity_issuer_chain"]}),
        "/sgx/certification/v4/rootcacrl": (c["root_ca_crl"].encode(), {}),  # PCCS: hex
        f"/vcek/v1/Genoa/{hwid}?blSPL={tcb[0]}&teeSPL={tcb[1]}&snpSPL={tcb[6]}"
        f"&ucodeSPL={tcb[7]}": (_der(GENOA_VCEK_PEM), {}),
        "/vcek/v1/Genoa/cert_chain": ((AMD_ASK["Genoa"] + AMD_ARK["Genoa"]).encode(), {}),
    }
    if tamper:
        body, headers = answers[tamper]
        middle = len(body) // 2 if b"tcbInfo" not in body else body.index(b'"UpToDate"') + 3
        answers[tamper] = (body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1:],
                           headers)
    return answers


def route(path: str) -> str:
    """The answer a PCS/KDS gives ``path``: ``update=standard`` is its default."""
    base, _, query = path.partition("?")
    params = [p for p in query.split("&") if p and p != "update=standard"]
    return base + ("?" + "&".join(params) if params else "")


class Vendor:
    """An HTTP server on loopback serving ``answers``; it records what was asked."""

    def __init__(self, answers: dict[str, tuple[bytes, dict[str, str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                vendor.asked.append(self.path)
                found = vendor.answers.get(route(self.path))
                if found is None:
                    self.send_error(404)
                    return
                body, headers = found
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                del args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Vendor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def fake_tsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Callable[..., None]:
    """A configfs-tsm report directory: mkdir of an entry fills it as the kernel does
    (provider, generation, outblob, and auxblob when the host has a certificate table);
    rmdir empties it. Calling the fixture sets what the next entry holds."""
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    held: dict[str, Any] = {}
    real_mkdir, real_rmdir = pathlib.Path.mkdir, os.rmdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        real_mkdir(self, *args, **kwargs)
        if self.parent == root:
            (self / "provider").write_text(held["provider"] + "\n")
            (self / "generation").write_text("1\n")
            (self / "outblob").write_bytes(held["out"])
            if held["aux"]:
                (self / "auxblob").write_bytes(held["aux"])

    def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).parent == root:
            for entry in Path(path).iterdir():
                entry.unlink()
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "rmdir", rmdir)
    monkeypatch.setattr(tsm, "TSM_ROOT", root)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)

    def holds(provider: str, out: bytes, aux: bytes = b"") -> None:
        held.update(provider=provider, out=out, aux=aux)

    return holds


def collect(kind: str) -> bytes:
    """The node's collection: every attester (the registry), this kind's evidence."""
    found = {k: (blob, fmt) for k, blob, fmt in _registry.collect_all(NONCE, "j", "node-a")}
    blob, fmt = found[kind]
    assert fmt != UNAVAILABLE, blob
    return blob


def without_crl(verdict: Any, root: str, product: str = "Genoa", signer: str = "vcek",
                missing: str = "HTTP 404") -> None:
    """Verified up to ``root`` but for revocation: "unverified", naming the CRL and why
    the node has none."""
    assert (verdict.status, verdict.root) == ("unverified", root), verdict.reason
    assert verdict.reason.startswith("not verified: revocation of the ")
    assert f"no AMD CRL of ARK-{product}, KDS /{signer}/v1/{product}/crl" in verdict.reason
    assert "the node could not fetch it: " in verdict.reason
    assert verdict.reason.endswith(f"{missing})"), verdict.reason


def appraise(blob: bytes, kind: str, *, bound: bool = True) -> Any:
    return _registry.verify_evidence(kind, blob, NONCE, "j", "node-a",
                                     appraisal=Appraisal(at=AT, check_binding=bound))


# --- TDX ------------------------------------------------------------------------------

def test_tdx_collateral_from_a_pccs_is_carried_and_verifies_offline(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tsm("tdx_guest", QUOTE)
    with Vendor(vendor_answers()) as vendor:
        monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", vendor.url + "/sgx/certification/v4")
        blob = collect("tdx")
    evidence = json.loads(blob)
    assert evidence["collateralSource"] == vendor.url + "/sgx/certification/v4"
    assert "collateralMissing" not in evidence
    assert sorted(p.split("?")[0] for p in vendor.asked) == [
        "/sgx/certification/v4/pckcrl", "/sgx/certification/v4/rootcacrl",
        "/tdx/certification/v4/qe/identity", "/tdx/certification/v4/tcb"]
    verdict = appraise(blob, "tdx", bound=False)  # the server is gone: offline
    assert verdict.status == "verified", verdict.reason
    assert (verdict.root, verdict.tcb_status, tuple(verdict.advisory_ids)) == (
        INTEL, "UpToDate", ())
    mismatch = appraise(blob, "tdx")
    assert (mismatch.failure, mismatch.root) == ("binding mismatch", INTEL)


@pytest.mark.parametrize("tamper", [
    "/tdx/certification/v4/qe/identity",
    "/sgx/certification/v4/pckcrl?ca=platform&encoding=der"])
def test_a_byte_changed_in_the_served_tdx_collateral_fails(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tamper: str) -> None:
    fake_tsm("tdx_guest", QUOTE)
    with Vendor(vendor_answers(tamper)) as vendor:
        monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", vendor.url)
        blob = collect("tdx")
    verdict = appraise(blob, "tdx", bound=False)
    assert verdict.status == "failed"
    assert verdict.failure in ("collateral", "certificate chain"), verdict.reason


def test_a_changed_tcb_status_in_the_served_tcb_info_fails(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tsm("tdx_guest", QUOTE)
    fmspc = json.loads(TDX_COLLATERAL["tcb_info"])["fmspc"]
    with Vendor(vendor_answers(f"/tdx/certification/v4/tcb?fmspc={fmspc}")) as vendor:
        monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", vendor.url)
        blob = collect("tdx")
    verdict = appraise(blob, "tdx", bound=False)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "tcb_info (collateral): signature not valid" in verdict.reason


def test_tdx_collateral_the_node_could_not_fetch_is_named_and_never_passes(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tsm("tdx_guest", QUOTE)
    with Vendor({}) as vendor:  # a PCCS that has nothing
        monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", vendor.url)
        blob = collect("tdx")
    evidence = json.loads(blob)
    assert "collateral" not in evidence
    assert evidence["collateralMissing"].endswith("HTTP 404")
    verdict = appraise(blob, "tdx", bound=False)
    assert verdict.status == "structure-only"
    assert "the node could not fetch it: GET http://127.0.0.1:" in verdict.not_verified[0]


def test_tdx_collateral_from_a_local_directory(fake_tsm: Callable[..., None],
                                               monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    fake_tsm("tdx_guest", QUOTE)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "other.json").write_text("{}")
    (tmp_path / "dir" / "fmspc.json").write_bytes(
        (HW / "tdx" / "quote-v4.collateral.json").read_bytes())
    monkeypatch.setenv("SLSA_TDX_COLLATERAL_DIR", str(tmp_path / "dir"))
    monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", "http://127.0.0.1:9")  # the dir wins
    verdict = appraise(collect("tdx"), "tdx", bound=False)
    assert (verdict.status, verdict.tcb_status) == ("verified", "UpToDate"), verdict.reason


def test_the_pcs_answer_is_cut_not_reserialized() -> None:
    body = b'{ "tcbInfo" : {"b": 1,  "a":[2, 3]} ,\n "signature":"ab"}'
    assert pcs_signed_json(body, "tcbInfo") == ('{"b": 1,  "a":[2, 3]}', "ab")
    with pytest.raises(Exception, match="expected a JSON object with 'tcbInfo'"):
        pcs_signed_json(b'{"signature": "ab"}', "tcbInfo")


# --- SEV-SNP --------------------------------------------------------------------------

def test_snp_vcek_from_amds_kds_is_carried_and_verifies_offline(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tsm("sev_guest", GENOA_REPORT)
    with Vendor(vendor_answers()) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    tcb = GENOA_REPORT[0x180:0x188]
    assert vendor.asked == [  # the report's chip id and REPORTED_TCB name the VCEK
        f"/vcek/v1/Genoa/{GENOA_REPORT[0x1A0:0x1E0].hex()}?blSPL={tcb[0]}&teeSPL={tcb[1]}"
        f"&snpSPL={tcb[6]}&ucodeSPL={tcb[7]}", "/vcek/v1/Genoa/cert_chain",
        "/vcek/v1/Genoa/crl"]  # the product's CRL: the VCEK's issuer names the product
    evidence = json.loads(blob)
    assert evidence["crlMissing"] == f"GET {vendor.url}/vcek/v1/Genoa/crl: HTTP 404"
    assert "crl" not in evidence
    verdict = appraise(blob, "snp", bound=False)
    without_crl(verdict, GENOA)
    assert any("VCEK issued for this chip and the reported TCB" in v for v in verdict.verified)
    assert appraise(blob, "snp").failure == "binding mismatch"


def test_a_byte_changed_in_the_served_vcek_fails(fake_tsm: Callable[..., None],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tsm("sev_guest", GENOA_REPORT)
    answers = vendor_answers()
    path = next(p for p in answers if "SPL" in p)
    body, headers = answers[path]
    answers[path] = (body[:-20] + bytes([body[-20] ^ 1]) + body[-19:], headers)  # signature
    with Vendor(answers) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    verdict = appraise(blob, "snp", bound=False)
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain"), verdict.reason
    # A byte that breaks its DER: the node carries no VCEK and says why; never verified.
    answers[path] = (body[:3] + bytes([body[3] ^ 0x40]) + body[4:], headers)
    with Vendor(answers) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    assert "certificate: expected PEM or DER" in json.loads(blob)["collateralMissing"]
    assert appraise(blob, "snp", bound=False).status == "structure-only"


def test_the_hosts_certificate_table_needs_no_fetch(fake_tsm: Callable[..., None],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import struct
    import uuid

    vcek = _der(GENOA_VCEK_PEM)
    table = (uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes_le
             + struct.pack("<II", 48, len(vcek)) + bytes(24) + vcek)
    fake_tsm("sev_guest", GENOA_REPORT, table)
    with Vendor({}) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    assert vendor.asked == ["/vcek/v1/Genoa/crl"]  # only the CRL: the table has the VCEK
    assert "collateral" not in json.loads(blob)
    verdict = appraise(blob, "snp", bound=False)
    without_crl(verdict, GENOA)


def test_snp_vcek_from_a_local_directory(fake_tsm: Callable[..., None],
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    fake_tsm("sev_guest", GENOA_REPORT)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "other.der").write_bytes(
        (HW / "snp" / "virtee-milan.vcek.der").read_bytes())  # another chip's VCEK
    (tmp_path / "certs" / "vcek.pem").write_bytes(GENOA_VCEK_PEM)
    monkeypatch.setenv("SLSA_SNP_COLLATERAL_DIR", str(tmp_path / "certs"))
    blob = collect("snp")
    assert json.loads(blob)["collateralSource"] == f"dir:{tmp_path / 'certs'}"
    assert json.loads(blob)["crlMissing"] == (f"{tmp_path / 'certs'}: expected AMD's CRL of "
                                              "ARK-Genoa (a .crl, .der or .pem file), found "
                                              "none")
    verdict = appraise(blob, "snp", bound=False)
    without_crl(verdict, GENOA, missing="found none")


def test_snp_kds_unreachable_is_named(fake_tsm: Callable[..., None],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tsm("sev_guest", GENOA_REPORT)
    monkeypatch.setenv("SLSA_SNP_KDS_URL", "none")
    blob = collect("snp")
    assert "turned off" in json.loads(blob)["collateralMissing"]
    assert "turned off" in json.loads(blob)["crlMissing"]
    assert appraise(blob, "snp", bound=False).status == "structure-only"


# --- AMD's CRL, end to end with the test PKI ------------------------------------------

def kds_answers(pki: AmdPki, report: bytes, crl: bytes) -> dict[str, tuple[bytes, dict[str, str]]]:
    """What AMD's KDS answers for ``pki``'s chip: its VCEK (DER), chain and CRL."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return {kds_path(report, pki.product): (pki.vcek.public_bytes(Encoding.DER), {}),
            f"/vcek/v1/{pki.product}/cert_chain": (pki.pem(pki.ask, pki.ark), {}),
            f"/vcek/v1/{pki.product}/crl": (crl, {})}


@pytest.fixture
def test_pki(monkeypatch: pytest.MonkeyPatch) -> AmdPki:
    pki = shared()
    pki.pin(monkeypatch)
    return pki


def test_snp_crl_from_the_kds_is_carried_and_verifies_offline(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch,
        test_pki: AmdPki) -> None:
    from slsa_dist.attest._binding import report_data

    report = test_pki.report(report_data(NONCE, "j", "node-a", size=64))
    fake_tsm("sev_guest", report)
    crl = test_pki.crl()
    with Vendor(kds_answers(test_pki, report, crl)) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    assert vendor.asked[1:] == ["/vcek/v1/Milan/cert_chain", "/vcek/v1/Milan/crl"]
    evidence = json.loads(blob)
    assert base64.b64decode(evidence["crl"]) == crl  # carried byte for byte
    assert (evidence["crlSource"], "crlMissing" in evidence) == (vendor.url, False)
    verdict = appraise(blob, "snp")  # offline, bound to this job, node and nonce
    assert verdict.status == "verified", verdict.reason
    assert any("neither the ASK nor the VCEK is revoked" in v for v in verdict.verified)
    # the same server, its CRL now listing the VCEK (and one served in PEM)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    revoked = x509.load_der_x509_crl(test_pki.crl(test_pki.vcek)).public_bytes(Encoding.PEM)
    with Vendor(kds_answers(test_pki, report, revoked)) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    verdict = appraise(blob, "snp")
    assert (verdict.status, verdict.failure) == ("failed", "certificate chain")
    assert verdict.reason.startswith("VCEK 'SEV-VCEK' (serial 0x5ec) is revoked")


def test_a_crl_not_made_by_the_ark_fails(fake_tsm: Callable[..., None],
                                         monkeypatch: pytest.MonkeyPatch,
                                         test_pki: AmdPki) -> None:
    report = test_pki.report()
    fake_tsm("sev_guest", report)
    other = AmdPki()  # another ARK of the same name
    with Vendor(kds_answers(test_pki, report, other.crl())) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    verdict = appraise(blob, "snp", bound=False)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "signature not valid for the pinned ARK-Milan" in verdict.reason
    # a body that is no CRL: the node carries none and says why
    with Vendor(kds_answers(test_pki, report, b"<html>busy</html>")) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    assert json.loads(blob)["crlMissing"].startswith(
        f"GET {vendor.url}/vcek/v1/Milan/crl: expected a DER X.509 CRL")
    assert appraise(blob, "snp", bound=False).status == "unverified"


def test_snp_crl_from_a_local_directory_and_with_a_host_table(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        test_pki: AmdPki) -> None:
    import struct
    import uuid

    from cryptography.hazmat.primitives.serialization import Encoding

    report = test_pki.report()
    fake_tsm("sev_guest", report)
    (tmp_path / "amd").mkdir()
    (tmp_path / "amd" / "vcek.pem").write_bytes(test_pki.collateral)
    crl = test_pki.crl()
    (tmp_path / "amd" / "other.crl").write_bytes(GENOA_VCEK_PEM)  # no CRL: passed over
    (tmp_path / "amd" / "milan.crl").write_bytes(crl)
    monkeypatch.setenv("SLSA_SNP_COLLATERAL_DIR", str(tmp_path / "amd"))
    blob = collect("snp")
    assert base64.b64decode(json.loads(blob)["crl"]) == crl
    assert json.loads(blob)["crlSource"] == f"dir:{tmp_path / 'amd'}"
    assert appraise(blob, "snp", bound=False).status == "verified"
    # the host's table has the VCEK: only the CRL is fetched
    monkeypatch.delenv("SLSA_SNP_COLLATERAL_DIR")
    vcek = test_pki.vcek.public_bytes(Encoding.DER)
    table = (uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes_le
             + struct.pack("<II", 48, len(vcek)) + bytes(24) + vcek)
    fake_tsm("sev_guest", report, table)
    with Vendor({"/vcek/v1/Milan/crl": (crl, {})}) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    assert vendor.asked == ["/vcek/v1/Milan/crl"]
    verdict = appraise(blob, "snp", bound=False)
    assert verdict.status == "verified", verdict.reason


def test_carried_collateral_fits_the_evidence_and_message_limits() -> None:
    from slsa_dist.collect._state import Limits
    from slsa_dist.collect._wire import MAX_MESSAGE_BYTES

    tdx = json.dumps({"outblob": base64.b64encode(QUOTE).decode(), "collateral":
                      base64.b64encode(json.dumps(TDX_COLLATERAL).encode()).decode()})
    assert 20_000 < len(tdx) < Limits().max_evidence_bytes // 16 < MAX_MESSAGE_BYTES


# --- through a job: inline in the node record, and in the ledger ----------------------

@pytest.mark.grpc
@pytest.mark.parametrize("kind", ["snp", "tdx"])
@pytest.mark.parametrize("ledger_above", [256, 0])
def test_a_jobs_evidence_carries_its_collateral_inline_and_in_the_ledger(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], ledger_above: int, kind: str) -> None:
    from slsa_dist.cli import main as cli_main
    from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
    from slsa_dist.collect._coordinator import CoordinatorThread
    from slsa_dist.collect._node import attest
    from slsa_dist.sign._keys import Signer

    if kind == "snp":
        fake_tsm("sev_guest", GENOA_REPORT)
    else:
        fake_tsm("tdx_guest", QUOTE)
    signer = Signer.generate()
    (tmp_path / "signing.pub").write_bytes(signer.public().public_pem())
    with Vendor(vendor_answers()) as vendor, CoordinatorThread(
            job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1, settle=0.2,
            ledger_above=ledger_above) as server:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", vendor.url)
        node = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                     identity=NodeIdentity(node_id="node-a", hostname="host-a"))
        attest(node, "j", "node-a")  # the node agent's own step
        node.record_attempt(attempt=0, run_id="r", ranks=[0], state="SUCCEEDED")
        assert node.close(30)
        rank = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                     identity=RankIdentity(rank=0, world_size=1, node_id="node-a"))
        rank.complete()
        assert rank.close(30)
        bundle = server.wait_finalized(30).bundle
    assert len(vendor.asked) == (3 if kind == "snp" else 4)  # once, at job time
    ledgers = list(bundle.parent.glob("*ledger*"))
    assert bool(ledgers) == (ledger_above == 0)
    code = cli_main(["verify", str(bundle), "--key", str(tmp_path / "signing.pub"),
                     "--require-attestation", kind])
    out = capsys.readouterr().out
    assert code == 1, out
    assert ("PASS  ledger:" in out) == (ledger_above == 0)
    if kind == "snp":
        # verify re-appraises the carried evidence offline: up to the Genoa ARK, then
        # the binding (a vector made for no job): a binding mismatch, not a missing VCEK
        assert f"snp: binding mismatch: the report verifies up to the {GENOA}" in out, out
    else:
        # Intel's collateral of June 2025 is out of date today: judged as carried (its
        # CRL's next update passed), never skipped for want of collateral
        assert "node-a: tdx: PCK certificate chain: CRL" in out, out
        assert "no Intel collateral carried" not in out


def test_dcap_qvl_fetches_the_same_collateral_from_the_loopback_pccs(
        fake_tsm: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    """An independent PCCS client (Phala's dcap-qvl) against the same server: the server
    answers as a PCCS does, and both clients assemble the same collateral."""
    import asyncio
    import importlib.util

    need(importlib.util.find_spec("dcap_qvl") is not None, "dcap-qvl (the dev extra)")
    import dcap_qvl

    fake_tsm("tdx_guest", QUOTE)
    with Vendor(vendor_answers()) as vendor:
        monkeypatch.setenv("SLSA_TDX_COLLATERAL_URL", vendor.url)
        ours = json.loads(base64.b64decode(json.loads(collect("tdx"))["collateral"]))

        async def fetch() -> Any:
            return await dcap_qvl.get_collateral(vendor.url, QUOTE)

        theirs = asyncio.run(fetch())
    report = dcap_qvl.verify(QUOTE, theirs, int(AT.timestamp()))
    assert report.status == "UpToDate"
    theirs_json = json.loads(theirs.to_json())
    for key in ("tcb_info", "qe_identity", "tcb_info_issuer_chain", "pck_crl_issuer_chain",
                "tcb_info_signature", "qe_identity_signature", "pck_crl", "root_ca_crl"):
        assert ours[key] == theirs_json[key], key  # CRLs: hex DER in both


def test_a_hosts_vlek_gets_its_asvk_chain_from_the_kds(fake_tsm: Callable[..., None],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import struct
    import uuid

    vlek = (HW / "snp" / "trustee-milan-vlek.vlek.der").read_bytes()
    table = (uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1").bytes_le
             + struct.pack("<II", 48, len(vlek)) + bytes(24) + vlek)
    fake_tsm("sev_guest", (HW / "snp" / "trustee-milan-vlek.report.bin").read_bytes(), table)
    asvk = (HW / "snp" / "go-sev-guest-milan.asvk.pem").read_bytes()
    with Vendor({"/vlek/v1/Milan/cert_chain": (asvk, {})}) as vendor:
        monkeypatch.setenv("SLSA_SNP_KDS_URL", vendor.url)
        blob = collect("snp")
    assert vendor.asked == ["/vlek/v1/Milan/cert_chain", "/vlek/v1/Milan/crl"]
    verdict = appraise(blob, "snp", bound=False)
    without_crl(verdict, MILAN_ROOT, "Milan", "vlek")
    assert verdict.claims["signingKey"] == "vlek"
    # the same host table without the ASVK fetched: no chain, never verified
    bare = json.loads(blob)
    del bare["collateral"]
    assert appraise(json.dumps(bare).encode(), "snp", bound=False).status == "failed"
