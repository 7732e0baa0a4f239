"""The node's NVIDIA evidence collection: RIMs and OCSP answers fetched at job time over
real HTTP (a RIM service and an OCSP responder on loopback), carried in the blob, and
verified offline from it.

The NVML call (``nvmlDeviceGetConfComputeGpuAttestationReport`` /
``...GpuCertificate``) cannot run here: there is no GPU. Everything after it runs: the
reader that stands in for NVML returns NVIDIA's real Hopper sample report and chain.
Since that report does not answer our binding, the verdicts here are judged without the
binding (it is tested in test_nvidia_spdm.py and test_nvidia_rim.py). No responder here can
answer for NVIDIA's chain, so the sample's verdicts are "unverified" (counted by nothing);
the counted path runs on a synthetic GPU (:class:`support.nvidia_pki.Gpu`, its device root
pinned) whose reader answers the job's binding, served RIMs and answers for every chain.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from slsa_dist.attest import _nvidia as nvidia
from slsa_dist.attest import _nvidia_collect as collect
from slsa_dist.attest import _roots as roots
from slsa_dist.attest._nvidia_spdm import rim_ids
from slsa_dist.attest._verdict import Appraisal

from support.nvidia_pki import Ca, Gpu

pytestmark = pytest.mark.timeout(60)

VECTORS = Path(__file__).parents[2] / "assets" / "vectors" / "hw" / "nvidia"
REPORT = bytes.fromhex((VECTORS / "hopperAttestationReport.txt").read_text().strip())
CHAIN = (VECTORS / "hopperCertChain.txt").read_bytes()
DRIVER_RIM = (VECTORS / "Driver_RIM_test_no_gpu.swidtag").read_bytes()
VBIOS_RIM = (VECTORS / "1010_0200_882_96005E0001_test_no_gpu.swidtag").read_bytes()
AT = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
UNBOUND = Appraisal(at=AT, check_binding=False)
MEASURED = nvidia.measurements(REPORT)
DRIVER_GOLDEN = {i: MEASURED[str(i + 1)] for i in (7, 21, 22, 23, 24)}  # the report's own
VBIOS_GOLDEN = {i: MEASURED[str(i + 1)] for i in (0, 1, 2, 4, 8)}
DRIVER_ID = "NV_GPU_DRIVER_GH100_550.90.07"
VBIOS_ID = "NV_GPU_VBIOS_1010_0200_882_96009F0001"


class Services:
    """A RIM service (``GET /v1/rim/<id>`` -> ``{"id", "rim": base64}``) and an OCSP
    responder (``POST /ocsp``) answering for the certificates it was given."""

    def __init__(self) -> None:
        self.rims: dict[str, bytes] = {}
        self.issuers: dict[int, tuple[x509.Certificate, x509.Certificate, object]] = {}
        self.requests: list[str] = []
        services = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                del args

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                services.requests.append(self.path)
                rim_id = self.path.removeprefix("/v1/rim/")
                if rim_id not in services.rims:
                    self._send(404, b'{"error": "not found"}', "application/json")
                    return
                body = json.dumps({"id": rim_id, "rim": base64.b64encode(
                    services.rims[rim_id]).decode()}).encode()
                self._send(200, body, "application/json")

            def do_POST(self) -> None:
                services.requests.append(self.path)
                data = self.rfile.read(int(self.headers["Content-Length"]))
                request = x509_ocsp.load_der_ocsp_request(data)
                known = services.issuers.get(request.serial_number)
                if known is None:
                    answer = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(
                        x509_ocsp.OCSPResponseStatus.UNAUTHORIZED)
                else:
                    cert, issuer, key = known
                    answer = x509_ocsp.OCSPResponseBuilder().add_response(
                        cert=cert, issuer=issuer, algorithm=hashes.SHA384(),
                        cert_status=x509_ocsp.OCSPCertStatus.GOOD,
                        this_update=dt.datetime(2024, 5, 30, tzinfo=dt.timezone.utc),
                        next_update=dt.datetime(2024, 6, 6, tzinfo=dt.timezone.utc),
                        revocation_time=None, revocation_reason=None,
                    ).responder_id(x509_ocsp.OCSPResponderEncoding.HASH, issuer).sign(
                        key, hashes.SHA384())  # type: ignore[arg-type]
                self._send(200, answer.public_bytes(serialization.Encoding.DER),
                           "application/ocsp-response")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def sources(self) -> collect.Sources:
        return collect.Sources(rim_url=f"{self.base}/v1/rim/", ocsp_url=f"{self.base}/ocsp",
                               timeout=5)

    def answer_for(self, ca: Ca) -> None:
        self.issuers[ca.leaf.serial_number] = (ca.leaf, ca.ca, ca.ca_key)
        self.issuers[ca.ca.serial_number] = (ca.ca, ca.root, ca.root_key)

    def answer_for_gpu(self, gpu: Gpu) -> None:
        self.issuers[gpu.leaf.serial_number] = (gpu.leaf, gpu.ica, gpu.ica_key)
        self.issuers[gpu.ica.serial_number] = (gpu.ica, gpu.root, gpu.root_key)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def services() -> Iterator[Services]:
    running = Services()
    try:
        yield running
    finally:
        running.close()


def gpu_reader(binding: bytes) -> list[tuple[bytes, bytes]]:
    """Stands in for NVML (no GPU here): NVIDIA's sample report and chain."""
    assert len(binding) == 32
    return [(REPORT, CHAIN)]


def synthetic(monkeypatch: pytest.MonkeyPatch, services: Services) -> Gpu:
    """A synthetic GPU and a test RIM CA pinned, its RIMs served, every chain answered."""
    gpu, ca = Gpu(), Ca()
    monkeypatch.setattr(roots, "NVIDIA_DEVICE_ROOT", gpu.pem())
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", ca.pem())
    driver, vbios = gpu.golden()
    services.rims = {DRIVER_ID: ca.sign_rim("driver", "550.90.07", driver),
                     VBIOS_ID: ca.sign_rim("vbios", "96.00.9F.00.01", vbios)}
    services.answer_for(ca)
    services.answer_for_gpu(gpu)
    return gpu


BOUND = Appraisal(at=AT)
JOB = (b"n" * 32, "job", "node")


def test_the_rim_ids_are_the_ones_the_report_names() -> None:
    fields = nvidia.opaque_data(REPORT)
    assert rim_ids(fields) == {"driver": DRIVER_ID, "vbios": VBIOS_ID}


def test_fetched_rims_and_answers_are_carried_and_verified(services: Services,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    gpu = synthetic(monkeypatch, services)
    blob = nvidia.collect(*JOB, read=lambda b: [(gpu.report(b), gpu.chain_pem())],
                          sources=services.sources())
    evidence = json.loads(blob)
    entry = evidence["gpus"][0]
    carried = base64.b64decode(evidence["shared"][entry["rims"]["driver"]])
    assert carried == services.rims[DRIVER_ID]  # byte-exact, named by its digest
    assert f"/v1/rim/{DRIVER_ID}" in services.requests
    assert f"/v1/rim/{VBIOS_ID}" in services.requests
    assert len(entry["ocsp"]) == 6  # the GPU's leaf and ICA, each RIM's signer and CA
    assert "ocspUnavailable" not in entry
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, *JOB, appraisal=BOUND)
    assert verdict.status == "verified", verdict.describe()
    text = verdict.describe()
    assert "the report's measurements equal the RIMs' golden values" in text
    assert "vbios RIM signing chain: not revoked, by OCSP answers" in text
    assert "GPU certificate chain: not revoked, by OCSP answers" in text
    assert "nonce, job and node binding (the SPDM request nonce)" in text


def test_the_sample_with_fetched_rims_and_no_gpu_answer_does_not_count(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = Ca()
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", ca.pem())
    services.rims = {DRIVER_ID: ca.sign_rim("driver", "550.90.07", DRIVER_GOLDEN),
                     VBIOS_ID: ca.sign_rim("vbios", "96.00.9F.00.01", VBIOS_GOLDEN)}
    services.answer_for(ca)
    blob = nvidia.collect(b"n" * 32, "job", "node", read=gpu_reader,
                          sources=services.sources())
    gpu = json.loads(blob)["gpus"][0]
    assert len(gpu["ocsp"]) == 4  # the signer and the CA of each RIM's chain
    assert len(gpu["ocspUnavailable"]) == 4  # the GPU chain: this responder knows none
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, b"", "", "",
                                             appraisal=UNBOUND)
    assert verdict.status == "unverified", verdict.describe()
    assert "GPU certificate chain: revocation of" in verdict.reason
    assert "GPU 0: the report's measurements equal the RIMs' golden values (10 active " \
           "entries)" in verdict.verified


def test_nvidia_s_own_rims_served_are_carried_and_fail_as_not_this_report_s(
        services: Services) -> None:
    services.rims = {DRIVER_ID: DRIVER_RIM, VBIOS_ID: VBIOS_RIM}  # real, but for 545.00
    blob = nvidia.collect(b"n" * 32, "job", "node", read=gpu_reader,
                          sources=services.sources())
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, b"", "", "",
                                             appraisal=UNBOUND)
    assert (verdict.status, verdict.failure) == ("failed", "collateral")
    assert "driver version 545.00, the report states 550.90.07" in verdict.reason


def test_an_unreachable_rim_service_is_recorded_and_not_verified(services: Services) -> None:
    blob = nvidia.collect(b"n" * 32, "job", "node", read=gpu_reader,
                          sources=services.sources())  # serves no RIM: 404
    gpu = json.loads(blob)["gpus"][0]
    assert "rims" not in gpu
    assert "HTTP Error 404" in gpu["rimsUnavailable"]
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, b"", "", "",
                                             appraisal=UNBOUND)
    assert verdict.status == "unverified"
    assert "driver and VBIOS RIMs (the node: driver RIM NV_GPU_DRIVER_GH100_550.90.07" \
           in verdict.reason
    assert any("driver and VBIOS RIMs (the node: driver RIM NV_GPU_DRIVER_GH100_550.90.07"
               in n for n in verdict.not_verified), verdict.not_verified


def test_a_local_rim_directory_picks_the_rim_by_version(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    ca = Ca()
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", ca.pem())
    (tmp_path / "other.swidtag").write_bytes(DRIVER_RIM)  # 545.00: not picked
    (tmp_path / "driver.swidtag").write_bytes(ca.sign_rim("driver", "550.90.07",
                                                          DRIVER_GOLDEN))
    (tmp_path / "vbios.xml").write_bytes(ca.sign_rim("vbios", "96.00.9F.00.01", VBIOS_GOLDEN))
    sources = collect.Sources.from_env({collect.RIM_DIR_ENV: str(tmp_path),
                                        collect.OCSP_URL_ENV: ""})
    blob = nvidia.collect(b"n" * 32, "job", "node", read=gpu_reader, sources=sources)
    gpu = json.loads(blob)["gpus"][0]
    assert gpu["ocspUnavailable"] == ["no OCSP responder configured (SLSA_NVIDIA_OCSP_URL)"]
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", blob, b"", "", "",
                                             appraisal=UNBOUND)
    # the RIMs picked hold; without any OCSP answer the verdict counts for nothing
    assert verdict.status == "unverified", verdict.describe()
    assert "GPU 0: the driver RIM is for the report's driver 550.90.07, the VBIOS RIM for its " \
           "VBIOS 96.00.9f.00.01" in verdict.verified
    for chain in ("GPU certificate chain", "driver RIM signing chain",
                  "vbios RIM signing chain"):
        assert f"{chain}: revocation of" in verdict.reason, chain


def test_the_sources_default_to_nvidia_s_services() -> None:
    sources = collect.Sources.from_env({})
    assert sources.rim_url == "https://rim.attestation.nvidia.com/v1/rim/"
    assert sources.ocsp_url == "https://ocsp.ndis.nvidia.com/"
    assert sources.rim_dir is None


def test_a_der_chain_from_nvml_is_carried_as_pem() -> None:
    certs = x509.load_pem_x509_certificates(CHAIN)
    der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
    assert x509.load_pem_x509_certificates(collect.pem_chain(der)) == certs


def test_eight_gpus_carry_each_rim_once_and_a_changed_shared_rim_fails(
        services: Services) -> None:
    services.rims = {DRIVER_ID: DRIVER_RIM, VBIOS_ID: VBIOS_RIM}
    blob = nvidia.collect(b"n" * 32, "job", "node", read=lambda b: gpu_reader(b) * 8,
                          sources=services.sources())
    evidence = json.loads(blob)
    assert len(evidence["gpus"]) == 8
    assert len(evidence["shared"]) == 2  # the two RIMs, once (this responder answers none)
    assert len(blob) < 200_000, len(blob)  # 170 KB measured; the evidence limit is 1 MiB
    name = evidence["gpus"][0]["rims"]["driver"]
    evidence["shared"][name] = base64.b64encode(DRIVER_RIM + b" ").decode()
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", json.dumps(evidence).encode(), b"",
                                             "", "", appraisal=UNBOUND)
    assert (verdict.status, verdict.failure) == ("failed", "malformed")
    assert "hash to another digest" in verdict.reason


def test_what_one_gpu_of_several_lacks_is_said_of_that_gpu(services: Services,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    gpu = synthetic(monkeypatch, services)
    evidence = json.loads(nvidia.collect(
        *JOB, read=lambda b: [(gpu.report(b), gpu.chain_pem())] * 2,
        sources=services.sources()))
    whole = nvidia.NvidiaAttester().verify("nvidia-cc", json.dumps(evidence).encode(), *JOB,
                                           appraisal=BOUND)
    assert whole.status == "verified", whole.describe()
    del evidence["gpus"][1]["rims"]  # the second GPU's node carried none
    verdict = nvidia.NvidiaAttester().verify("nvidia-cc", json.dumps(evidence).encode(), *JOB,
                                             appraisal=BOUND)
    assert verdict.status == "unverified", verdict.describe()
    assert verdict.reason == ("GPU 1: not counted: expected RIMs and OCSP answers for every "
                              "certificate, missing the measurements against NVIDIA's driver "
                              "and VBIOS RIMs (no RIMs carried)")
    assert any(n.startswith("GPU 1: the measurements against NVIDIA's driver and VBIOS RIMs")
               for n in verdict.not_verified), verdict.not_verified
    assert not any(n.startswith("GPU 0:") for n in verdict.not_verified)
