"""NVIDIA GPUs: identity through NVML, confidential-computing evidence when CC is on.

Device identity (name, UUID, serial, VBIOS, driver, CC mode) is in the node
inventory (:func:`slsa_dist.capture._inventory.gpu_inventory`). Evidence: when a GPU
is in CC mode and NVIDIA's attestation SDK (``nv-attestation-sdk``) is
installed, its local verifier is run and its outcome recorded; otherwise the
reason there is no evidence is recorded. Nothing here claims a verification
it did not perform.

Raw SPDM evidence (format ``nvidia-spdm/v1``: per GPU the GET_MEASUREMENTS request
and signed response, hex, and its certificate chain, PEM, leaf first) is appraised
here (:func:`verify_report`): the response's ECDSA P-384 signature over SHA-384 of
request and response by the GPU's attestation key; that key's certificate chain up
to the pinned NVIDIA Device Identity CA; the request's nonce = this job's binding
(checked last). The measurements are parsed but not compared with NVIDIA's driver
and VBIOS RIMs (not implemented: recorded as not verified). Nodes do not collect
raw reports yet (they run NVIDIA's local verifier and report its outcome).
"""

from __future__ import annotations

import importlib.util
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from slsa_dist._internal.nvml import gpu_inventory
from slsa_dist.attest import _pki as pki
from slsa_dist.attest import _roots as roots
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict, Failure
from slsa_dist.errors import InputError

__all__ = ["FORMAT", "SPDM_FORMAT", "NvidiaAttester", "available", "collect", "measurements",
           "verify", "verify_report"]

FORMAT = "nvidia-cc/v1"
SPDM_FORMAT = "nvidia-spdm/v1"
_REQUEST = 37  # SPDM 1.1 GET_MEASUREMENTS: header 4, nonce 32, slot 1
_SIGNATURE = 96  # ECDSA P-384 r || s
_RIMS = ("the measurements against NVIDIA's driver and VBIOS RIMs (RIM verification is not "
         "implemented: the measurements are recorded, not appraised)")


def verify_report(report: bytes, chain_pem: bytes, nonce: bytes, job_id: str, node_id: str,
                  *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
    """One GPU's SPDM GET_MEASUREMENTS request and signed response, with its certificate
    chain (leaf first). Never raises on bad evidence."""
    appraisal = appraisal or Appraisal()
    not_verified = [_RIMS, "certificate revocation (NVIDIA's OCSP answers are not carried)"]

    def fail(failure: Failure, reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure=failure, reason=reason,
                               not_verified=not_verified)

    if len(report) <= _REQUEST + 4 + _SIGNATURE or report[:2] != b"\x11\xe0" \
            or report[_REQUEST:_REQUEST + 2] != b"\x11\x60":
        return fail("malformed", f"SPDM report: expected a GET_MEASUREMENTS request (11 e0) "
                    f"and response (11 60) and a signature, found {len(report)} bytes starting "
                    f"{report[:2].hex()} / {report[_REQUEST:_REQUEST + 2].hex()}")
    try:
        certs = pki.load_certificates(chain_pem)
    except pki.ChainError as exc:
        return fail("malformed", f"GPU certificate chain: {exc}")
    root = pki.load_certificates(roots.NVIDIA_DEVICE_ROOT.encode())[0]
    at = appraisal.when()
    chain = [c for c in certs if pki.fingerprint(c) != pki.fingerprint(root)]
    try:
        pki.verify_chain(certs[0], chain[1:], root, at)
    except pki.ChainError as exc:
        return fail("certificate chain", f"GPU certificate chain: {exc}")
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        return fail("signature", "GPU attestation key: expected ECDSA P-384")
    signature = report[-_SIGNATURE:]
    try:
        key.verify(encode_dss_signature(int.from_bytes(signature[:48], "big"),
                                        int.from_bytes(signature[48:], "big")),
                   report[:-_SIGNATURE], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return fail("signature", "SPDM report signature: not valid for the GPU's attestation "
                    "key certificate")
    label = pki.root_label("NVIDIA Device Identity CA", root)
    verified = ["SPDM GET_MEASUREMENTS response signed (ECDSA P-384, SHA-384 over request "
                "and response) by the GPU attestation key", f"its certificate chain up to "
                f"{label}"]
    request_nonce = report[4:36]
    claims: dict[str, object] = {"requestNonce": request_nonce.hex(),
                                 "leaf": certs[0].subject.rfc4514_string()}
    try:
        claims["measurements"] = measurements(report)
    except InputError as exc:
        return fail("malformed", f"SPDM measurement record: {exc}")
    if appraisal.check_binding:
        expected = report_data(nonce, job_id, node_id)
        if request_nonce != expected:
            return fail("binding mismatch", f"nonce binding: expected the SPDM request nonce "
                        f"{expected.hex()[:16]}... for this nonce, job and node, found "
                        f"{request_nonce.hex()[:16]}...")
        verified.append("nonce, job and node binding (the SPDM request nonce)")
    else:
        not_verified.append("the nonce, job and node binding (no nonce given)")
    return EvidenceVerdict(status="verified", verified=verified, not_verified=not_verified,
                           root=label, as_of=at.isoformat(), claims=claims)


def measurements(report: bytes) -> dict[str, str]:
    """The measurement blocks of a signed SPDM GET_MEASUREMENTS response (DMTF DSP0274
    1.1, 10.11): index -> the measurement value (hex). Raises :class:`InputError`."""
    response = report[_REQUEST:]
    if len(response) < 8:
        raise InputError("expected a measurements response header")
    length = int.from_bytes(response[5:8], "little")
    record = response[8:8 + length]
    if len(record) != length:
        raise InputError(f"expected {length} bytes of measurement blocks, found {len(record)}")
    found, offset = {}, 0
    while offset < length:
        if offset + 7 > length:
            raise InputError(f"measurement block at {offset}: truncated")
        index = record[offset]
        size = int.from_bytes(record[offset + 2:offset + 4], "little")
        block = record[offset + 4:offset + 4 + size]
        value_size = int.from_bytes(block[1:3], "little") if len(block) >= 3 else -1
        if len(block) != size or value_size != size - 3:
            raise InputError(f"measurement block {index}: expected {size} bytes holding a "
                             f"DMTF measurement of {size - 3}, found {len(block)}")
        found[str(index)] = block[3:].hex()
        offset += 4 + size
    if len(found) != response[4]:
        raise InputError(f"expected {response[4]} measurement blocks, found {len(found)}")
    return found


def _verify_spdm(evidence: dict[str, object], nonce: bytes, job_id: str, node_id: str,
                 appraisal: Appraisal | None) -> EvidenceVerdict:
    gpus = evidence.get("gpus")
    if not isinstance(gpus, list) or not gpus:
        return EvidenceVerdict(status="failed", failure="malformed",
                               reason="nvidia-spdm evidence: expected a list of GPUs")
    verdicts = []
    for index, gpu in enumerate(gpus):
        try:
            report = bytes.fromhex(str(gpu["report"]))
            chain = str(gpu["certChain"]).encode()
        except (KeyError, TypeError, ValueError) as exc:
            return EvidenceVerdict(status="failed", failure="malformed",
                                   reason=f"GPU {index}: malformed ({exc})")
        verdict = verify_report(report, chain, nonce, job_id, node_id, appraisal=appraisal)
        if verdict.status != "verified":
            return EvidenceVerdict(status=verdict.status, failure=verdict.failure,
                                   reason=f"GPU {index}: {verdict.reason}",
                                   not_verified=verdict.not_verified)
        verdicts.append(verdict)
    first = verdicts[0]
    return EvidenceVerdict(status="verified", verified=first.verified,
                           not_verified=first.not_verified, root=first.root, as_of=first.as_of,
                           claims={"gpus": [dict(v.claims) for v in verdicts],
                                   "reportedByNode": evidence.get("localVerifier", "none")})


def available() -> str | None:
    gpus = gpu_inventory()
    if not gpus["available"]:
        return str(gpus.get("reason", "NVML not available"))
    if not gpus["devices"]:
        return "NVML reports no GPUs"
    mode = gpus.get("confidentialComputing", {}).get("mode")
    if mode != "enabled":
        return f"GPU confidential computing mode is {mode!r}, not 'enabled'"
    if importlib.util.find_spec("nv_attestation_sdk") is None:
        return "GPU CC mode is on but nv-attestation-sdk is not installed"
    return None


def collect(nonce: bytes, job_id: str, node_id: str) -> bytes:
    """Run NVIDIA's local GPU attestation with the binding as nonce; returns its outcome."""
    why = available()
    if why is not None:
        raise InputError(why)
    from nv_attestation_sdk import attestation  # type: ignore[import-not-found]

    from slsa_dist.attest._binding import report_data

    client = attestation.Attestation()
    client.set_name(node_id)
    client.set_nonce(report_data(nonce, job_id, node_id).hex())
    client.add_verifier(attestation.Devices.GPU, attestation.Environment.LOCAL, "", "")
    passed = bool(client.attest())
    token = client.get_token()
    return json.dumps({"format": FORMAT, "passed": passed, "token": token,
                       "devices": gpu_inventory()["devices"]}, sort_keys=True).encode()


def verify(blob: bytes, nonce: bytes, job_id: str, node_id: str) -> EvidenceVerdict:
    """Record the outcome the node's SDK reported; nothing here re-verifies the GPU.

    NVIDIA's local verifier runs on the node and signs its token with a fixed
    HS256 key, so the outcome is the node's own report: a pass is ``reported``
    (by ``node_id``), never ``verified``, and counts for no ``--require-attestation``.
    """
    del nonce, job_id
    try:
        evidence = json.loads(blob)
        passed = evidence["passed"]
    except (ValueError, KeyError, TypeError) as exc:
        return EvidenceVerdict(status="failed", reason=f"malformed NVIDIA evidence: {exc}")
    not_verified = [
        "the GPU's attestation report and certificate chain, by the coordinator (the node's "
        "local verifier checked them; its token is signed with a fixed HS256 key, so the "
        "outcome is the node's report)",
        "the nonce binding inside the token"]
    if passed is True:  # the node's word, bound to nothing: never "verified"
        return EvidenceVerdict(
            status="reported", not_verified=not_verified,
            reason=f"reported by node {node_id}: NVIDIA's local GPU verifier passed (a "
                   "self-reported outcome, not verified here: it satisfies no requirement)",
            claims={"reportedBy": node_id, "outcome": "passed"})
    return EvidenceVerdict(status="failed", reason="the node reports that NVIDIA's local GPU "
                           "verifier "
            "did not pass", not_verified=not_verified)


class NvidiaAttester:
    """The ``nvidia-cc`` attester (:class:`~slsa_dist.attest.Attester`)."""

    name = "nvidia-cc"
    kinds = ("nvidia-cc",)
    proves = ("raw SPDM reports: signed by the GPU's attestation key, chained to the pinned "
              "NVIDIA Device Identity CA, answering this job's nonce (measurements not "
              "compared with RIMs); otherwise the node's own report, never counted")

    def available(self) -> str | None:
        return available()

    def collect(self, nonce: bytes, job_id: str, node_id: str, *,
                challenge: bytes = b"") -> tuple[str, bytes]:
        del challenge  # the nonce is all this kind answers
        return self.name, collect(nonce, job_id, node_id)

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
        del kind
        try:
            evidence = json.loads(blob)
        except ValueError:
            evidence = None
        if isinstance(evidence, dict) and evidence.get("format") == SPDM_FORMAT:
            return _verify_spdm(evidence, nonce, job_id, node_id, appraisal)
        return verify(blob, nonce, job_id, node_id)
