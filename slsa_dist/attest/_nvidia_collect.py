"""Raw NVIDIA GPU evidence, collected by the node at job time so that ``verify`` is offline.

Per GPU in CC mode: the SPDM attestation report answering this job's binding and the
attestation certificate chain (NVML, :meth:`slsa_dist._internal.nvml.Nvml.attestation`);
then the driver and VBIOS RIMs the report names (from NVIDIA's RIM service, or a local
directory), and an OCSP answer for every certificate of the GPU's and the RIMs' chains.
All of it is carried, byte for byte, in the ``nvidia-spdm/v1`` blob; nothing is trusted
here (``verify`` checks each part). What could not be fetched is recorded with the
reason (``rimsUnavailable``, ``ocspUnavailable``) and shows in the verdict as not verified.

Settings (environment of the node):

- ``SLSA_NVIDIA_RIM_URL``: the RIM service's base URL (default NVIDIA's,
  ``https://rim.attestation.nvidia.com/v1/rim/``); ``GET <base><RIM id>`` answers JSON
  whose ``rim`` member is the RIM, base64.
- ``SLSA_NVIDIA_RIM_DIR``: a directory of RIM files (``*.swidtag``, ``*.xml``) used instead
  of the service; a RIM is picked by its version (Meta/@colloquialVersion) equal to the
  report's driver or VBIOS version, a file named by the RIM id first.
- ``SLSA_NVIDIA_OCSP_URL``: the OCSP responder (default ``https://ocsp.ndis.nvidia.com/``);
  an empty value fetches no OCSP answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from slsa_dist.attest import _nvidia_rim as rim
from slsa_dist.attest import _pki as pki
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._nvidia_spdm import (
    SPDM_FORMAT,
    driver_version,
    opaque_data,
    rim_ids,
    vbios_version,
)
from slsa_dist.errors import InputError

__all__ = ["DEFAULT_OCSP_URL", "DEFAULT_RIM_URL", "OCSP_URL_ENV", "RIM_DIR_ENV", "RIM_URL_ENV",
           "Sources", "collect_spdm", "fetch_ocsp", "fetch_rim", "gpu_evidence",
           "nvml_reports", "pem_chain"]

RIM_URL_ENV = "SLSA_NVIDIA_RIM_URL"
RIM_DIR_ENV = "SLSA_NVIDIA_RIM_DIR"
OCSP_URL_ENV = "SLSA_NVIDIA_OCSP_URL"
DEFAULT_RIM_URL = "https://rim.attestation.nvidia.com/v1/rim/"
DEFAULT_OCSP_URL = "https://ocsp.ndis.nvidia.com/"
_MAX_BODY = 4 << 20

Reader = Callable[[bytes], Sequence[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class Sources:
    """Where the node fetches RIMs and OCSP answers from."""

    rim_url: str = DEFAULT_RIM_URL
    rim_dir: Path | None = None
    ocsp_url: str = DEFAULT_OCSP_URL
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Sources:
        env = os.environ if env is None else env
        directory = env.get(RIM_DIR_ENV, "")
        return cls(rim_url=env.get(RIM_URL_ENV, "") or DEFAULT_RIM_URL,
                   rim_dir=Path(directory) if directory else None,
                   ocsp_url=env.get(OCSP_URL_ENV, DEFAULT_OCSP_URL))


def _request(url: str, timeout: float, data: bytes | None = None,
             content_type: str = "") -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise OSError(f"{url}: expected an http or https URL")
    request = urllib.request.Request(url, data=data)  # noqa: S310 (scheme checked above)
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read(_MAX_BODY + 1)
    if len(body) > _MAX_BODY:
        raise OSError(f"{url}: answer larger than {_MAX_BODY} bytes")
    return body


def fetch_rim(component: str, rim_id: str, version: str, sources: Sources) -> bytes:
    """The RIM ``rim_id`` (its bytes as published). Raises :class:`OSError` or
    :class:`InputError` naming what was not found."""
    if sources.rim_dir is not None:
        files = sorted(p for p in sources.rim_dir.iterdir()
                       if p.suffix in (".swidtag", ".xml") and p.is_file())
        files.sort(key=lambda p: p.stem != rim_id)  # a file named by the id first
        for path in files:
            data = path.read_bytes()
            try:
                document, _ = rim.parse_unverified(data)
            except rim.RimError:
                continue
            meta = document.find(f"{rim.SWID}Meta")
            if meta is not None and str(meta.get("colloquialVersion", "")).lower() == version:
                return data
        raise OSError(f"{component} RIM {rim_id}: no RIM of version {version} in "
                      f"{sources.rim_dir}")
    url = sources.rim_url.rstrip("/") + "/" + urllib.parse.quote(rim_id)
    try:
        answer = json.loads(_request(url, sources.timeout))
        return base64.b64decode(answer["rim"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{component} RIM {rim_id}: expected JSON with a base64 \"rim\" "
                         f"from {url}, found {type(exc).__name__}: {exc}") from None


def fetch_ocsp(chain: Sequence[x509.Certificate], sources: Sources) -> tuple[list[bytes],
                                                                            list[str]]:
    """An OCSP answer (DER) for each certificate of ``chain`` (leaf first, issuer after
    each) and the reasons for those not fetched."""
    answers, missing = [], []
    for cert, issuer in pairwise(chain):
        name = cert.subject.rfc4514_string()
        request = (x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA384())
                   .build().public_bytes(serialization.Encoding.DER))
        try:
            body = _request(sources.ocsp_url, sources.timeout, request,
                            "application/ocsp-request")
            answer = x509_ocsp.load_der_ocsp_response(body)
        except (OSError, ValueError) as exc:
            missing.append(f"{name}: {exc}")
            continue
        if answer.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            missing.append(f"{name}: responder says {answer.response_status.name.lower()}")
            continue
        answers.append(body)
    return answers, missing


def pem_chain(raw: bytes) -> bytes:
    """The chain as PEM, leaf first: NVML's PEM text as is, or concatenated DER converted.
    Raises :class:`InputError`."""
    if b"-----BEGIN CERTIFICATE-----" in raw:
        return raw.split(b"\0")[0]
    out, offset = [], 0
    while offset < len(raw) and raw[offset] == 0x30:
        head = raw[offset + 1]
        size, start = head, offset + 2
        if head & 0x80:
            count = head & 0x7F
            size = int.from_bytes(raw[start:start + count], "big")
            start += count
        der = raw[offset:start + size]
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise InputError(f"GPU certificate chain: expected PEM or DER, found {exc}") \
                from None
        out.append(cert.public_bytes(serialization.Encoding.PEM))
        offset = start + size
    if not out:
        raise InputError("GPU certificate chain: expected PEM or DER certificates, found none")
    return b"".join(out)


def gpu_evidence(report: bytes, chain: bytes, sources: Sources) -> dict[str, Any]:
    """One GPU's evidence entry: the report and chain, and what could be fetched."""
    gpu: dict[str, Any] = {"report": report.hex()}
    try:
        chain_pem = pem_chain(chain)
        certs = pki.load_certificates(chain_pem)
        gpu["certChain"] = chain_pem.decode("ascii")
        fields = opaque_data(report)
        ids = rim_ids(fields)
        versions = {"driver": driver_version(fields), "vbios": vbios_version(fields)}
    except (InputError, UnicodeDecodeError) as exc:
        gpu.setdefault("certChain", "")
        gpu["rimsUnavailable"] = f"the report or chain could not be read: {exc}"
        return gpu
    rims, reasons = {}, []
    for component in rim.COMPONENTS:
        try:
            rims[component] = fetch_rim(component, ids[component], versions[component],
                                        sources)
        except (OSError, InputError) as exc:
            reasons.append(f"{component} RIM {ids[component]}: {exc}")
    if reasons:  # one RIM without the other is carried by neither
        gpu["rimsUnavailable"] = "; ".join(reasons)
    else:
        gpu["rims"] = {c: base64.b64encode(v).decode() for c, v in rims.items()}
    if not sources.ocsp_url:
        gpu["ocspUnavailable"] = [f"no OCSP responder configured ({OCSP_URL_ENV})"]
        return gpu
    chains, missing = [certs], []
    for component, data in rims.items() if not reasons else ():
        try:
            chains.append(rim.parse_unverified(data)[1])
        except rim.RimError as exc:  # carried all the same: verify says what is wrong
            missing.append(f"{component} RIM signing chain: {exc}")
    answers: list[bytes] = []
    for one in chains:
        found, why = fetch_ocsp(one, sources)
        answers += found
        missing += why
    gpu["ocsp"] = [base64.b64encode(a).decode() for a in answers]
    if missing:
        gpu["ocspUnavailable"] = missing
    return gpu


def nvml_reports(binding: bytes) -> list[tuple[bytes, bytes]]:
    """Every GPU's SPDM report answering ``binding`` and its certificate chain, via NVML
    (needs a GPU in CC mode; never runs on a machine without one). Raises
    :class:`OSError`."""
    from slsa_dist._internal.nvml import Nvml

    nvml = Nvml()
    try:
        return [nvml.attestation(i, binding) for i in range(nvml.device_count())]
    finally:
        nvml.close()


def collect_spdm(nonce: bytes, job_id: str, node_id: str, *, read: Reader | None = None,
                 sources: Sources | None = None) -> dict[str, Any]:
    """The ``nvidia-spdm/v1`` evidence of every GPU, bound to ``nonce``, ``job_id`` and
    ``node_id``. Raises :class:`OSError` only when the reports themselves cannot be read."""
    binding = report_data(nonce, job_id, node_id)
    sources = sources or Sources.from_env()
    reports = (read or nvml_reports)(binding)
    if not reports:
        raise OSError("NVML returned no GPU attestation report")
    return _shared({"format": SPDM_FORMAT,
                    "gpus": [gpu_evidence(report, chain, sources) for report, chain in reports]})


def _shared(evidence: dict[str, Any]) -> dict[str, Any]:
    """Each RIM and OCSP answer once (``shared``: ``sha256:<hex>`` -> base64), the GPUs
    naming them by digest: eight GPUs of one model carry the same two RIMs, 20 KiB each."""
    shared: dict[str, str] = {}

    def ref(value: str) -> str:
        name = "sha256:" + hashlib.sha256(base64.b64decode(value)).hexdigest()
        shared[name] = value
        return name

    for gpu in evidence["gpus"]:
        if "rims" in gpu:
            gpu["rims"] = {c: ref(v) for c, v in gpu["rims"].items()}
        if "ocsp" in gpu:
            gpu["ocsp"] = [ref(v) for v in gpu["ocsp"]]
    if shared:
        evidence["shared"] = shared
    return evidence
