"""Hardware evidence bound to the job: TPM 2.0, TDX/SEV-SNP, NVIDIA GPUs.

On a node, :func:`collect_all` asks every attester for evidence answering
the coordinator's nonce (bound to the job and node: see
:mod:`slsa_dist.attest.binding`); an attester that cannot run returns why,
which is recorded too. On the coordinator, :func:`verify_evidence` checks
each piece and says what was verified, what was not, and why.

Kinds: ``tpm``, ``tdx``, ``snp``, ``nvidia-cc``.
"""

from __future__ import annotations

from collections.abc import Callable

from slsa_dist.attest import nvidia, tpm, tsm
from slsa_dist.attest.verdict import (
    KINDS,
    UNAVAILABLE,
    EvidenceVerdict,
    EvidenceVerifier,
)
from slsa_dist.errors import InputError

__all__ = ["KINDS", "UNAVAILABLE", "EvidenceVerdict", "EvidenceVerifier", "collect_all",
           "verify_evidence"]

_Collector = Callable[[bytes, str, str], bytes]
_ATTESTERS: tuple[tuple[str, Callable[[], str | None], _Collector], ...] = (
    ("tpm", tpm.available, tpm.collect),
    ("tsm", tsm.available, tsm.collect),  # reported as tdx or snp
    ("nvidia-cc", nvidia.available, nvidia.collect),
)


def collect_all(nonce: bytes, job_id: str, node_id: str) -> list[tuple[str, bytes, str]]:
    """(kind, blob, format) for every attester: evidence, or the reason there is none."""
    found: list[tuple[str, bytes, str]] = []
    for kind, available, collect in _ATTESTERS:
        why = available()
        if why is None:
            try:
                blob = collect(nonce, job_id, node_id)
            except (InputError, OSError) as exc:
                why = f"collection failed: {exc}"
            else:
                try:  # for configfs-tsm the provider says which TEE wrote the report
                    reported = tsm.report_kind(blob) if kind == "tsm" else kind
                except InputError as exc:
                    why = f"collection failed: {exc}"
                else:
                    found.append((reported, blob, "evidence"))
                    continue
        found.append((kind, why.encode(), UNAVAILABLE))
    return found


def verify_evidence(kind: str, blob: bytes, nonce: bytes, job_id: str,
                    node_id: str) -> EvidenceVerdict:
    """The coordinator's evidence verifier (pure computation, no I/O)."""
    if kind == "tpm":
        return tpm.verify(blob, nonce, job_id, node_id)
    if kind in ("tdx", "snp"):
        verdict = tsm.verify(blob, nonce, job_id, node_id)
        if verdict.status in ("verified", "structure-only") and tsm.report_kind(blob) != kind:
            return EvidenceVerdict(status="failed", reason=(
                f"kind: claimed {kind!r}, found a {tsm.report_kind(blob)!r} report"))
        return verdict
    if kind == "nvidia-cc":
        return nvidia.verify(blob, nonce, job_id, node_id)
    return EvidenceVerdict(status="unverified", reason=f"no verifier for evidence kind {kind!r}")
