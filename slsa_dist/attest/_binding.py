"""How evidence is bound to one job, one node and one coordinator nonce."""

from __future__ import annotations

import hashlib

__all__ = ["DOMAIN", "report_data"]

DOMAIN = b"slsa-dist/v1 evidence\0"


def report_data(nonce: bytes, job_id: str, node_id: str, *, size: int = 32) -> bytes:
    """The value a TPM quote (qualifying data) or TEE report (report data) must carry.

    SHA-256 (32 bytes, TPM) or SHA-512 (64 bytes, TDX/SNP report data) over a
    domain tag, the coordinator's nonce, the job id and the node id, each
    length-prefixed: evidence for one job or node does not verify for another,
    and a stale nonce does not verify at all.
    """
    parts = [DOMAIN]
    for field in (nonce, job_id.encode(), node_id.encode()):
        parts.append(len(field).to_bytes(4, "big"))
        parts.append(field)
    data = b"".join(parts)
    if size == 32:
        return hashlib.sha256(data).digest()
    if size == 64:
        return hashlib.sha512(data).digest()
    raise ValueError(f"report data size: expected 32 or 64, found {size}")
