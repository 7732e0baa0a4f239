"""The attester registry: every evidence kind slsa-dist can collect and appraise.

The node agent (``collect_all``), the coordinator (``verify_evidence``), ``verify
--require-attestation`` and the CLI's choices all read :data:`ATTESTERS`. Adding a
kind is one module with a class like :class:`~._nvidia.NvidiaAttester` and one line
here (docs/architecture.md shows the diff).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from slsa_dist.attest._nvidia import NvidiaAttester
from slsa_dist.attest._tpm import TpmAttester
from slsa_dist.attest._tsm import TsmAttester
from slsa_dist.attest._verdict import UNAVAILABLE, Appraisal, EvidenceVerdict
from slsa_dist.errors import InputError

__all__ = ["ATTESTERS", "KINDS", "Attester", "collect_all", "verify_evidence"]


class Attester(Protocol):
    """One source of hardware evidence, on the node and at appraisal."""

    @property
    def name(self) -> str:
        """What the node reports when it has none (``tsm`` reports ``tdx`` or ``snp``)."""
        ...

    @property
    def kinds(self) -> Sequence[str]:
        """The evidence kinds it collects and verifies."""
        ...

    @property
    def proves(self) -> str:
        """What a verified piece of its evidence proves, in one line (docs, ``inspect``)."""
        ...

    def available(self) -> str | None:
        """None when this node can produce evidence, else why not."""
        ...

    def collect(self, nonce: bytes, job_id: str, node_id: str) -> tuple[str, bytes]:
        """(kind, evidence) answering ``nonce`` for this job and node."""
        ...

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
        """Appraise one piece of evidence: pure computation, never raises on bad evidence.

        ``appraisal``: the time to judge certificates and collateral as of, the
        verifier's own collateral and roots (default: now, none).
        """
        ...


ATTESTERS: tuple[Attester, ...] = (TpmAttester(), TsmAttester(), NvidiaAttester())
KINDS: tuple[str, ...] = tuple(kind for attester in ATTESTERS for kind in attester.kinds)
_BY_KIND = {kind: attester for attester in ATTESTERS for kind in attester.kinds}


def collect_all(nonce: bytes, job_id: str, node_id: str) -> list[tuple[str, bytes, str]]:
    """(kind, blob, format) for every attester: evidence, or the reason there is none."""
    found: list[tuple[str, bytes, str]] = []
    for attester in ATTESTERS:
        why = attester.available()
        if why is None:
            try:
                kind, blob = attester.collect(nonce, job_id, node_id)
            except (InputError, OSError) as exc:
                why = f"collection failed: {exc}"
            else:
                found.append((kind, blob, "evidence"))
                continue
        found.append((attester.name, why.encode(), UNAVAILABLE))
    return found


def verify_evidence(kind: str, blob: bytes, nonce: bytes, job_id: str,
                    node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
    """Appraise one piece of evidence with the attester of its kind (no I/O)."""
    attester = _BY_KIND.get(kind)
    if attester is None:
        return EvidenceVerdict(status="unverified", reason=f"no verifier for evidence kind "
                                                           f"{kind!r}")
    return attester.verify(kind, blob, nonce, job_id, node_id, appraisal=appraisal)
