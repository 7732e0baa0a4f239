"""The attester registry: every evidence kind slsa-dist can collect and appraise.

The node agent (``collect_all``), the coordinator (``verify_evidence``), ``verify
--require-attestation`` and the CLI's choices all read :data:`ATTESTERS`. Adding a
kind is one module with a class like :class:`~._nvidia.NvidiaAttester` and one line
here (docs/architecture.md shows the diff).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from slsa_dist.attest._nvidia import NvidiaAttester
from slsa_dist.attest._tpm import TpmAttester
from slsa_dist.attest._tsm import TsmAttester
from slsa_dist.attest._verdict import UNAVAILABLE, Appraisal, EvidenceVerdict
from slsa_dist.errors import InputError

__all__ = ["ATTESTERS", "KINDS", "Attester", "collect_all", "tpm_identity", "verify_evidence"]


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

    def collect(self, nonce: bytes, job_id: str, node_id: str, *,
                challenge: bytes = b"") -> tuple[str, bytes]:
        """(kind, evidence) answering ``nonce`` for this job and node.

        ``challenge``: what the coordinator sent for this attester with the nonce, if
        anything (``tpm``: a credential to activate, :func:`tpm_identity`).
        """
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


def tpm_identity() -> tuple[bytes, bytes] | None:
    """What a node sends with its request for a nonce so that the coordinator can add a
    TPM credential challenge: (EK certificate, enrolled AK's TPM2B_PUBLIC), or None."""
    from slsa_dist.attest._tpm import identity

    return identity()


def collect_all(nonce: bytes, job_id: str, node_id: str, *,
                challenges: Mapping[str, bytes] | None = None) -> list[tuple[str, bytes, str]]:
    """(kind, blob, format) for every attester: evidence, or the reason there is none.

    ``challenges``: by attester name, what the coordinator sent it with the nonce.
    """
    found: list[tuple[str, bytes, str]] = []
    for attester in ATTESTERS:
        why = attester.available()
        if why is None:
            try:
                kind, blob = attester.collect(nonce, job_id, node_id, challenge=(
                    challenges or {}).get(attester.name, b""))
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
