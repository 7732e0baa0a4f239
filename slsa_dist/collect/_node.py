"""A node agent's start: register the node, report what it is, prove it for this job.

Shared by the torchrun plugin (one per torchrun agent) and the Ray Train
callback (one per Ray node, in its first worker): the node's inventory, its
installed packages as dependencies, and hardware evidence from every
attester answering a fresh nonce from the coordinator (or, when there is no
nonce or no attester, the reason, recorded: never a silent gap).
"""

from __future__ import annotations

import os
import socket
import sys

from slsa_dist.capture import _inventory as inventory
from slsa_dist.collect._agent import Agent, NodeIdentity

__all__ = ["attest", "start_node_agent"]


def attest(agent: Agent, job_id: str, node_id: str) -> None:
    """Evidence for every attester, answering a fresh nonce from the coordinator (and, for
    a TPM with an enrolled AK and an EK certificate, its credential challenge)."""
    from slsa_dist.attest._registry import collect_all, tpm_identity
    from slsa_dist.attest._verdict import UNAVAILABLE
    from slsa_dist.errors import TransportError

    try:  # with an enrolled AK and an EK certificate, the TPM is challenged too
        nonce, credential = agent.challenge_tpm(tpm_identity())
    except TransportError as exc:
        if os.environ.get("SLSA_REQUIRED") == "1":  # --slsa-required: no provenance, no run
            raise
        print(f"slsa-dist: WARNING: {exc}; training continues, its provenance may be "
              "incomplete (--slsa-required makes this fatal)", file=sys.stderr, flush=True)
        agent.record_evidence("any", f"no nonce from the coordinator: {exc}".encode(),
                              nonce=b"", fmt=UNAVAILABLE)
        return
    for kind, blob, fmt in collect_all(nonce, job_id, node_id,
                                       challenges={"tpm": credential} if credential else None):
        agent.record_evidence(kind, blob, nonce=nonce, fmt=fmt)


def start_node_agent(*, coordinator: str, job_id: str, node_id: str, node_rank: int = 0,
                     spool_dir: str | os.PathLike[str] | None = None,
                     background: bool = False) -> Agent:
    """Register ``node_id``, report its inventory and packages, and attest it.

    With ``background`` the inventory and the attestation (which waits for the
    coordinator's nonce) run on a thread the agent joins before it closes, so the
    launcher starts the workers meanwhile.
    """
    agent = Agent(coordinator=coordinator, job_id=job_id, spool_dir=spool_dir,
                  identity=NodeIdentity(node_id=node_id, hostname=socket.gethostname(),
                                        node_rank=node_rank))

    def describe() -> None:
        found = inventory.collect(packages=True)
        packages = found.pop("packages")
        agent.record_inventory(found)
        for name, version in packages.items():
            agent.record_dependency("package", uri=inventory.package_url(name, version))
        attest(agent, job_id, node_id)

    if background:
        agent.before_close(describe)
    else:
        describe()
    return agent
