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
from typing import Any

from slsa_dist._internal.merge import EvidenceVerdict
from slsa_dist.attest import nvidia, tpm, tsm
from slsa_dist.errors import InputError

__all__ = ["KINDS", "UNAVAILABLE", "collect_all", "verify_evidence"]

KINDS = ("tpm", "tdx", "snp", "nvidia-cc")
UNAVAILABLE = "unavailable"  # the format of an evidence event that carries only a reason

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


def _verdict(result: dict[str, Any]) -> EvidenceVerdict:
    return EvidenceVerdict(status=result["status"], verified=tuple(result.get("verified", ())),
                           not_verified=tuple(result.get("not_verified", ())),
                           reason=result.get("reason", ""), claims=result.get("claims", {}))


def verify_evidence(kind: str, blob: bytes, nonce: bytes, job_id: str,
                    node_id: str) -> EvidenceVerdict:
    """The coordinator's evidence verifier (pure computation, no I/O)."""
    if kind == "tpm":
        return _verdict(tpm.verify(blob, nonce, job_id, node_id))
    if kind in ("tdx", "snp"):
        result = tsm.verify(blob, nonce, job_id, node_id)
        if result["status"] == "verified" and result.get("kind") != kind:
            return EvidenceVerdict(status="failed", reason=(
                f"kind: claimed {kind!r}, found a {result.get('kind')!r} report"))
        return _verdict(result)
    if kind == "nvidia-cc":
        return _verdict(nvidia.verify(blob, nonce, job_id, node_id))
    return EvidenceVerdict(status="unverified", reason=f"no verifier for evidence kind {kind!r}")
