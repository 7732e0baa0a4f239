"""Who may claim what: the one authorization table of the coordinator.

Every claim a bundle can carry has exactly one principal allowed to make it
(docs/threat-model.md, "Who may claim what"). The table below says which, and
what the claim must agree with; the ingest layer (``collect._ingest``) calls the
functions here before it changes any state, whatever order messages arrive in,
and the judgment at finalization (``collect._assemble``) checks the agreements
again with everything in hand, so a claim accepted before its contradiction
arrived is caught then.

A principal is what the coordinator observes, never a field a sender fills in:
the URI SAN of the peer's certificate (ADR 0004), the node a relay call
authenticated as (ADR 0010), or, on plaintext loopback, the operator's own host
(``OPERATOR``: trusted to act as any rank or node, as the operator chose). A
journal replay (``REPLAY``) re-applies entries that were authorized and bounded
when they were accepted and MAC-chained since (ADR 0002): it skips the identity
and budget checks, never the state's own rules.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from slsa_dist.errors import SenderError

__all__ = ["CLAIMS", "EVENT_CLAIMS", "OPERATOR", "REPLAY", "Claim", "Principal",
           "authorize_event", "authorize_exit_codes", "authorize_finalize", "authorize_node",
           "authorize_rank", "authorize_sender"]

# Who may make a claim (the table's second column).
RANK = "the rank's own sender"
LAUNCHER = "its node's launcher (node agent)"
COORDINATOR = "the coordinator's own observation"
OPERATOR_SET = "the operator's configuration"
ANY_SENDER = "any registered sender (merged; a disagreement is a conflict)"
NOBODY = "nobody (derived at finalization)"


@dataclass(frozen=True)
class Principal:
    """Who the coordinator observed making a call: ``rank``/``node``/``admin``/
    ``coordinator`` with its name (from its certificate), or the operator's host."""

    kind: str
    name: str = ""

    @classmethod
    def rank(cls, rank: int | str) -> Principal:
        return cls("rank", str(rank))

    @classmethod
    def node(cls, node: str) -> Principal:
        return cls("node", node)

    @property
    def trusted(self) -> bool:
        """The operator's host or a journal replay: may act as any rank or node."""
        return self.kind in ("operator", "replay")

    def __str__(self) -> str:
        return self.kind if self.trusted else f"{self.kind} {self.name!r}"


OPERATOR = Principal("operator")
REPLAY = Principal("replay")


@dataclass(frozen=True)
class Claim:
    """One row: a claim, the one principal allowed to make it, what it must agree with."""

    name: str
    principal: str
    agrees_with: str


# Every claim a bundle can carry. Enforced where ``where`` says (tests in
# tests/unit/collect/test_authority.py and tests/security/).
CLAIMS: Mapping[str, Claim] = {c.name: c for c in (
    Claim("attempt start", LAUNCHER,
          "opened only by node launchers' attempt records; a rank registering into an "
          "attempt no launcher opened is a conflict"),
    Claim("attempt end", LAUNCHER,
          "the nodes of an earlier attempt report it ended (RESTARTED, FAILED) before a "
          "later one judges the job; SUCCEEDED then is a conflict; a node heard from after "
          "the final attempt began has not departed; with a fixed world size a departed "
          "node is a conflict"),
    Claim("rank membership of an attempt", LAUNCHER,
          "the launcher's list of the ranks it started; a rank listed by two launchers in "
          "one attempt is a conflict; listed ranks lie below the attempt's world size"),
    Claim("a rank's node", LAUNCHER,
          "the rank registers under the node whose launcher lists it: refused when that "
          "launcher's list came first, a conflict (and the rank not counted) when it came "
          "after; a rank certificate may name any node, a node certificate only its own"),
    Claim("a worker", RANK,
          "joins its (rank, attempt) from the node it was first registered under; at most "
          "max_workers_per_rank per (rank, attempt), max_senders_per_principal per "
          "principal"),
    Claim("shard reads", RANK, "tenant data (SLSA Build L2), labelled so"),
    Claim("files written", RANK,
          "tenant data; two ranks writing different bytes to one file is a conflict"),
    Claim("capture gaps", RANK, "tenant data"),
    Claim("exit state", RANK,
          "the launcher's exit code for the rank (only for ranks it listed): a "
          "disagreement is a conflict"),
    Claim("node evidence", LAUNCHER, "a nonce the coordinator issued to that node"),
    Claim("node inventory", LAUNCHER, "reported, not proven"),
    Claim("rank inventory and annotations", RANK, "reported, not proven"),
    Claim("dependencies and parameters", ANY_SENDER,
          "each other: a key two senders set differently is a conflict"),
    Claim("world size", OPERATOR_SET,
          "an attempt's world size is its first rank's, inside the operator's range, and "
          "must fit its launchers' lists"),
    Claim("peer address, arrival, nonces, relayedBy", COORDINATOR, "nothing: observed"),
    Claim("completion", NOBODY,
          "derived: every rank of the final attempt succeeded there, listed by its node's "
          "launcher, no conflict, no gap; Finalize is asked by an admin or the coordinator"),
)}

# Event kind (the oneof field of ``pb.Event``) -> (the claim, whose sender may send it:
# "rank", "node" or "any"), and the words a refusal uses.
EVENT_CLAIMS: Mapping[str, tuple[str, str, str]] = {
    "shard": ("shard reads", "rank", "shards are reported by ranks"),
    "file": ("files written", "rank", "files written are reported by ranks"),
    "planned": ("files written", "rank", "planned files are reported by ranks"),
    "capture_gap": ("capture gaps", "rank", "capture gaps are reported by ranks"),
    "completed": ("exit state", "rank", "completion is reported by ranks"),
    "evidence": ("node evidence", "node", "evidence is reported by nodes, found it from a rank"),
    "attempt": ("attempt start", "node", "attempts are reported by nodes"),
    "inventory": ("node inventory", "any", ""),
    "annotation": ("rank inventory and annotations", "any", ""),
    "dependency": ("dependencies and parameters", "any", ""),
    "parameters": ("dependencies and parameters", "any", ""),
}


def _denied(message: str) -> SenderError:
    return SenderError(message, code="PERMISSION_DENIED")


def authorize_node(principal: Principal, node: str, what: str = "node") -> None:
    """Only node ``node`` itself (its certificate, or its relay) acts as that node."""
    if principal.trusted or (principal.kind == "node" and principal.name == node):
        return
    raise _denied(f"{what}: expected node {node!r}, found the certificate of {principal}")


def authorize_rank(principal: Principal, rank: int, node: str) -> None:
    """A rank registers as itself (a rank certificate, which may name any node: the
    launcher's list binds it), or through the node it names (that node's certificate,
    or its relay); never through another node."""
    if principal.trusted or (principal.kind == "rank" and principal.name == str(rank)):
        return
    if principal.kind == "node" and node and principal.name == node:
        return
    expected = f"node {node!r}, the node of rank {rank}" if principal.kind == "node" \
        else f"rank {str(rank)!r}"
    raise _denied(f"identity: expected {expected}, found the certificate of {principal}")


def authorize_sender(principal: Principal, sender: str, rank: int | None, node: str) -> None:
    """A batch comes from its sender's own principal: a rank's sender from that rank or
    from the node it registered under; a node's sender from that node."""
    if principal.trusted:
        return
    if rank is not None:
        if (principal.kind == "rank" and principal.name == str(rank)) \
                or (principal.kind == "node" and principal.name == node):
            return
        expected = f"node {node!r}, the node of rank {rank}" if principal.kind == "node" \
            else f"rank {str(rank)!r}"
    else:
        if principal.kind == "node" and principal.name == node:
            return
        expected = f"node {node!r}"
    raise _denied(f"identity: expected {expected} for sender {sender}, found the "
                  f"certificate of {principal}")


def authorize_event(kind: str, from_rank: bool, where: str) -> None:
    """An event kind is claimed only by the sender kind the table names."""
    _, who, refusal = EVENT_CLAIMS[kind]
    if who == "any" or (who == "rank") == from_rank:
        return
    raise SenderError(f"{where}: {refusal}", code="INVALID_ARGUMENT")


def authorize_exit_codes(node: str, attempt: int, named: Iterable[int],
                         listed: Collection[int], where: str) -> None:
    """A launcher reports the exit codes of the ranks it started (``listed``: in this
    attempt record or an earlier one of its node), never of another node's ranks."""
    foreign = sorted(set(named) - set(listed))
    if foreign:
        raise _denied(f"{where}: expected exit codes of the ranks node {node!r} launched in "
                      f"attempt {attempt} ({sorted(listed)}), found rank(s) {foreign[:8]}")


def authorize_finalize(principal: Principal) -> None:
    """Finalization is asked by an admin or the coordinator (or the operator's host)."""
    if principal.trusted or principal.kind in ("coordinator", "admin"):
        return
    raise _denied(f"finalize: expected an admin or coordinator certificate, found "
                  f"{principal}")
