"""The attestation vocabulary every stage shares: evidence kinds and a verifier's verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["UNAVAILABLE", "EvidenceVerdict", "EvidenceVerifier", "Status"]

UNAVAILABLE = "unavailable"  # the format of an evidence event that carries only a reason

# "verified": the checks in ``verified`` passed, a signature by a trusted key among them;
# "structure-only": well-formed and bound to the nonce, but no signature chain was
# verified (anyone could have written it); "failed": a check did not pass (``reason``);
# "unverified": nothing here could check this kind; "unavailable": the node had none
# and said why; "reported": an outcome the node reports of a check it ran itself, which
# nothing here can verify (NVIDIA's local verifier signs with a fixed key): shown as
# "reported by node X". Only "verified" counts for --require-attestation, "any" included.
Status = Literal["verified", "structure-only", "failed", "unverified", "unavailable",
                 "reported"]


@dataclass(frozen=True)
class EvidenceVerdict:
    """What a verifier concluded about one piece of evidence, and what it did not check."""

    status: Status
    verified: Sequence[str] = ()
    not_verified: Sequence[str] = ()
    reason: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # lists in, tuples kept: a verdict never changes
        object.__setattr__(self, "verified", tuple(self.verified))
        object.__setattr__(self, "not_verified", tuple(self.not_verified))


# (kind, blob, nonce, job id, node id) -> verdict. Pure computation, no I/O; it never
# raises on bad evidence (a bad blob is a "failed" verdict).
EvidenceVerifier = Callable[[str, bytes, bytes, str, str], EvidenceVerdict]
