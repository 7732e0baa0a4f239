"""What verification decided: one :class:`Check` per requirement, gathered in a :class:`Result`.

Also :class:`Evidence`, what a requirement is checked against: the statement whose
signature verified, and what could be read of the records it binds. ``verify``,
``inspect`` and ``report`` all show the same :class:`Result`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slsa_dist.errors import VerificationError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement

__all__ = ["Check", "Evidence", "Result", "VerificationFailed"]


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Evidence:
    """A bundle as far as it verified: what requirements are checked against.

    ``statement`` verified under a trusted key; ``provenance`` is it read as a SLSA
    provenance (None for a Verification Summary Attestation), with its record ledger
    attached when one was found. ``records_missing`` says why the records the statement
    binds cannot be read (a ledger withheld or failing its check), None when they can;
    ``ledger_read`` is whether the ledger was read whole and ``completed`` the ranks its
    lines (or the inline records) say completed, None when nobody counted them.
    """

    bundle: Path
    statement: Statement
    provenance: Provenance | None = None
    records_missing: str | None = None
    ledger_read: bool = False
    completed: frozenset[int] | None = None

    @property
    def is_vsa(self) -> bool:
        return self.provenance is None


@dataclass(frozen=True)
class Result:
    """Every check one bundle went through, passed or not, and what was left unasked.

    ``ok`` holds only when there was at least one check and every one passed: a
    result with nothing in it is no pass. ``notes`` say what nobody asked for (a
    builder id no requirement names), never a requirement that could not be checked
    (that is a failed check).
    """

    bundle: Path
    checks: tuple[Check, ...]
    provenance: Provenance | None = None
    statement: Statement | None = None
    notes: tuple[str, ...] = ()
    sha256: str = ""
    """The SHA-256 of the bundle bytes these checks read (a VSA names its input by it)."""

    @property
    def ok(self) -> bool:
        return self.statement is not None and bool(self.checks) and \
            all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.ok, "bundle": str(self.bundle),
                "checks": [c.to_dict() for c in self.checks], "warnings": list(self.notes)}


class VerificationFailed(VerificationError):  # noqa: N818 -- reads as a verdict
    """Verification failed; ``checks`` holds every check that ran, ``result`` the whole
    :class:`Result`."""

    def __init__(self, checks: Sequence[Check], result: Result | None = None) -> None:
        failed = [c for c in checks if not c.ok] or list(checks)
        super().__init__("; ".join(f"{c.name}: {c.detail}" for c in failed)
                         or "expected at least one check, found none")
        self.checks = list(checks)
        self.result = result

