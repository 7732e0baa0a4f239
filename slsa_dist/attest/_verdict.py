"""The attestation vocabulary every stage shares: evidence kinds and a verifier's verdict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["FAILURES", "UNAVAILABLE", "Appraisal", "EvidenceVerdict", "EvidenceVerifier",
           "Failure", "Status"]

UNAVAILABLE = "unavailable"  # the format of an evidence event that carries only a reason

# "verified": the checks in ``verified`` passed, up to the pinned root named in ``root``
# (or, for TPM quotes with --trusted-aks, a key the policy trusts); "structure-only":
# well-formed and bound to the nonce, but no signature chain was verified (anyone could
# have written it); "failed": a check did not pass (``failure`` says which kind,
# ``reason`` says what); "unverified": nothing here could check this kind, or what
# was checked held but something the verdict needs is missing (SNP without AMD's CRL,
# NVIDIA without both RIMs or an OCSP answer per certificate): ``reason`` names it;
# "unavailable": the node had none and said why; "reported": an outcome the node reports
# of a check it ran itself, which nothing here can verify (NVIDIA's local verifier signs
# with a fixed key): shown as "reported by node X". Only "verified" counts for
# --require-attestation, "any" included.
Status = Literal["verified", "structure-only", "failed", "unverified", "unavailable",
                 "reported"]

# Why a "failed" verdict failed. "binding mismatch" is its own kind: genuine hardware
# evidence, signed up to the vendor's root, that answers another job, node or nonce (a
# replay, or a vector made for someone else) is not a forgery, and is said so.
# "activation": a TPM quote whose AK was not shown to live in the TPM of the certified
# EK (the credential challenge was not answered, or answered wrongly). "reference values":
# evidence verified up to its root whose measured registers are not the values the
# verifier's reference values accept (or that lacks a register they name). "event log":
# a TPM quote whose boot event log does not replay to its quoted PCRs (or is unusable).
Failure = Literal["", "malformed", "signature", "certificate chain", "collateral",
                  "tcb", "binding mismatch", "kind", "activation", "reference values",
                  "event log"]
FAILURES: tuple[str, ...] = ("malformed", "signature", "certificate chain", "collateral",
                             "tcb", "binding mismatch", "kind", "activation",
                             "reference values", "event log")


@dataclass(frozen=True)
class Appraisal:
    """What the verifier brings to an appraisal besides the evidence: never the node's word.

    ``at``: the time certificates, CRLs and TCB collateral are judged as of (default:
    now); a bundle is re-appraised as of the job's finish. ``collateral``: offline
    collateral by kind (``tdx``: the quote collateral JSON; ``snp``: the VCEK, PEM or
    DER, optionally followed by ASK/ARK and AMD's CRL); it is checked up to the pinned
    roots like collateral carried with the evidence. ``ek_roots``: PEM certificates of the TPM
    manufacturers' (or the operator's) EK roots. ``challenge``: the coordinator's record of
    the credential challenge it issued with this evidence's nonce (TPM credential
    activation, :mod:`._credential`), re-made here from its opening, never taken on its
    word. ``check_binding``: False only for a
    stand-alone check of evidence outside a bundle with no job to bind to
    (``slsa-dist attest verify`` without ``--nonce``).
    """

    at: dt.datetime | None = None
    collateral: Mapping[str, bytes] = field(default_factory=dict)
    ek_roots: Sequence[bytes] = ()
    challenge: bytes = b""
    check_binding: bool = True

    def when(self) -> dt.datetime:
        return self.at or dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class EvidenceVerdict:
    """What a verifier concluded about one piece of evidence, and what it did not check.

    ``root``: the pinned root the evidence was verified up to (name and SHA-256), empty
    when none was reached; ``as_of``: the time certificates and collateral were judged
    at; ``tcb_status`` and ``advisory_ids``: the vendor's TCB status of the platform
    (TDX), as of ``as_of``; ``failure``: the kind of failure of a "failed" verdict.
    """

    status: Status
    verified: Sequence[str] = ()
    not_verified: Sequence[str] = ()
    reason: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    root: str = ""
    as_of: str = ""
    tcb_status: str = ""
    advisory_ids: Sequence[str] = ()
    failure: Failure = ""

    def __post_init__(self) -> None:  # lists in, tuples kept: a verdict never changes
        object.__setattr__(self, "verified", tuple(self.verified))
        object.__setattr__(self, "not_verified", tuple(self.not_verified))
        object.__setattr__(self, "advisory_ids", tuple(self.advisory_ids))

    def to_json(self) -> dict[str, Any]:
        """The verdict as a JSON object (``slsa-dist attest verify --json``)."""
        out: dict[str, Any] = {"status": self.status, "verified": list(self.verified),
                               "notVerified": list(self.not_verified)}
        for key, value in (("failure", self.failure), ("reason", self.reason),
                           ("root", self.root), ("asOf", self.as_of),
                           ("tcbStatus", self.tcb_status)):
            if value:
                out[key] = value
        if self.tcb_status:
            out["advisoryIds"] = list(self.advisory_ids)
        if self.claims:
            out["claims"] = dict(self.claims)
        return out

    def describe(self) -> str:
        """The verdict in lines of text: status, root and time, what was and was not checked."""
        head = self.status + (f" ({self.failure})" if self.failure else "")
        lines = [f"status: {head}"]
        if self.reason:
            lines.append(f"reason: {self.reason}")
        lines.append(f"root: {self.root or 'none reached'}")
        if self.as_of:
            lines.append(f"as of: {self.as_of}")
        if self.tcb_status:
            lines.append(f"TCB status: {self.tcb_status}"
                         + (f" (advisories: {', '.join(self.advisory_ids)})"
                            if self.advisory_ids else " (no advisories)"))
        lines += [f"verified: {item}" for item in self.verified]
        lines += [f"not verified: {item}" for item in self.not_verified]
        return "\n".join(lines)


class EvidenceVerifier(Protocol):
    """(kind, blob, nonce, job id, node id) -> verdict. Pure computation, no I/O; it never
    raises on bad evidence (a bad blob is a "failed" verdict). ``appraisal`` is passed
    only when there is something to bring (the coordinator's TPM credential challenge)."""

    def __call__(self, kind: str, blob: bytes, nonce: bytes, job_id: str, node_id: str, /, *,
                 appraisal: Appraisal | None = None) -> EvidenceVerdict: ...
