"""NVIDIA GPUs: identity through NVML, confidential-computing evidence when CC is on.

Device identity (name, UUID, serial, VBIOS, driver, CC mode) is in the node
inventory (:func:`slsa_dist.capture._inventory.gpu_inventory`). Evidence: when a GPU
is in CC mode and NVIDIA's attestation SDK (``nv-attestation-sdk``) is
installed, its local verifier is run and its outcome recorded; otherwise the
reason there is no evidence is recorded. Nothing here claims a verification
it did not perform.
"""

from __future__ import annotations

import importlib.util
import json

from slsa_dist._internal.nvml import gpu_inventory
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict
from slsa_dist.errors import InputError

__all__ = ["FORMAT", "NvidiaAttester", "available", "collect", "verify"]

FORMAT = "nvidia-cc/v1"


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
    proves = ("nothing cryptographic yet: the node's own report of its GPUs' "
              "confidential-computing state")

    def available(self) -> str | None:
        return available()

    def collect(self, nonce: bytes, job_id: str, node_id: str, *,
                challenge: bytes = b"") -> tuple[str, bytes]:
        del challenge  # the nonce is all this kind answers
        return self.name, collect(nonce, job_id, node_id)

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
        del kind, appraisal
        return verify(blob, nonce, job_id, node_id)
