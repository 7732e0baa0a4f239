"""``slsa-dist upload-spool``: deliver what agents left in a spool, as the same senders.

An agent that could not reach its coordinator keeps its events in a spool file
(``collect/spool.py``) that records its registration. Once the coordinator is
up (and the job not finalized), each spool is sent by an agent with that very
identity, so the coordinator deduplicates and journals it exactly as if the
original agent had got through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
from slsa_dist.collect._spool import Spool
from slsa_dist.errors import InputError

__all__ = ["Delivery", "upload_spool"]


@dataclass(frozen=True)
class Delivery:
    spool: Path
    sender: str
    events: int
    delivered: bool


def _identity(sender: dict[str, Any]) -> RankIdentity | NodeIdentity:
    fields = dict(sender["identity"])
    if sender.get("kind") == "rank":
        return RankIdentity(**fields)
    return NodeIdentity(**fields)


def upload_spool(path: str | Path, *, coordinator: str | None = None,
                 tls_dir: str | None = None, timeout: float = 60.0) -> list[Delivery]:
    """Send every spool under ``path`` (a job's spool folder, or one file).

    Raises:
        InputError: no spool there, or a spool that records no sender (written by an
            agent from before senders were recorded).
    """
    root = Path(path)
    files = [root] if root.is_file() else sorted(root.glob("*.spool"))
    if not files:
        raise InputError(f"upload-spool: expected .spool files at {root}, found none")
    results = []
    for file in files:
        sender = Spool(file).sender()
        if sender is None:
            raise InputError(f"upload-spool {file}: expected a spool that records its sender, "
                             "found one written before senders were recorded")
        events = len(Spool(file).read())
        credentials = None
        if tls_dir is not None:
            from slsa_dist.sign._ca import channel_credentials

            credentials = channel_credentials(tls_dir)
        agent = Agent(coordinator=coordinator or sender["coordinator"], job_id=sender["job"],
                      identity=_identity(sender), spool_dir=file.parent.parent,
                      credentials=credentials)
        delivered = agent.deliver_spool(timeout)
        results.append(Delivery(spool=file, sender=str(agent.identity), events=events,
                                delivered=delivered))
    return results
