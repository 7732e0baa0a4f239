"""One training job across the namespaces of a :class:`support.cluster.Cluster`.

A job CA with one coordinator, admin and node certificate per host (``slsa-dist
ca``); the coordinator in its own namespace on mutual TLS; ``slsa-torchrun`` on
every node with c10d rendezvous at ``node0``; each node's agent and ranks use the
node's certificate and its own TPM. Used by the cluster tests and
``make demo-cluster``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.cluster import COORDINATOR_PORT, Cluster, Member

__all__ = ["ClusterJob"]

BUILDER = "https://slsa-dist.dev/builders/local/v1"
SLSA = [sys.executable, "-m", "slsa_dist.cli"]


def slsa(*args: str) -> None:
    subprocess.run([*SLSA, *args], check=True, capture_output=True, timeout=60)


@dataclass
class ClusterJob:
    """The job's files under ``root``: pki/, out/, spool/<node>/, logs in the cluster's."""

    cluster: Cluster
    job_id: str
    root: Path
    key: Path
    world_size: int | str  # N, or MIN:MAX for an elastic job
    nproc: int = 2
    port: int = COORDINATOR_PORT  # the coordinator's; give each job of a cluster its own
    rdzv_port: int = 29500
    coordinator: subprocess.Popen[bytes] | None = None
    launchers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def bundle(self) -> Path:
        return self.root / "out" / f"{self.job_id}.intoto.jsonl"

    @property
    def address(self) -> str:
        return f"{self.cluster.coordinator.name}:{self.port}"

    def issue(self, nodes: Sequence[Member]) -> None:
        """The job CA, the coordinator's and admin's certificates, one per node."""
        if not (self.pki / "ca").exists():
            slsa("ca", "init", "--job-id", self.job_id, "--out", str(self.pki / "ca"))
            slsa("ca", "issue", "--ca", str(self.pki / "ca"), "--role", "coordinator",
                 "--host", self.cluster.coordinator.name, "--host",
                 self.cluster.coordinator.address, "--out", str(self.pki / "coordinator"))
            slsa("ca", "issue", "--ca", str(self.pki / "ca"), "--role", "admin", "--out",
                 str(self.pki / "admin"))
        for node in nodes:
            slsa("ca", "issue", "--ca", str(self.pki / "ca"), "--role", "node", "--name",
                 node.name, "--out", str(self.pki / f"node-{node.name}"))

    def start_coordinator(self, *extra: str) -> None:
        self.coordinator = self.cluster.start(self.cluster.coordinator, [
            *SLSA, "coordinator", "--job-id", self.job_id,
            "--listen", f"{self.cluster.coordinator.address}:{self.port}",
            "--tls", str(self.pki / "coordinator"), "--key", str(self.key),
            "--out", str(self.root / "out"), "--world-size", str(self.world_size),
            "--builder-id", BUILDER, "--linger", "1", "--settle", "10", *extra],
            log=f"coordinator-{self.job_id}.log")

    # With restarts, the workers' store is not the rendezvous's shared one: a restart
    # across nodes reads the previous attempt's addresses from it (pytorch/pytorch#135712).
    def start_node(self, node: Member, script: Path, args: Sequence[str], *, nnodes: str,
                   max_restarts: int = 0, rdzv_conf: str = "") -> subprocess.Popen[bytes]:
        env = {**({"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"} if max_restarts else {}),"SLSA_TLS_DIR": str(self.pki / "node-{node}"), "TPM2TOOLS_TCTI": node.tcti,
               "GLOO_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1",
               "SLSA_ARTIFACT_ROOT": str(self.root)}
        proc = self.cluster.start(node, [
            sys.executable, "-m", "slsa_dist.integrations._torchrun",
            "--slsa-coordinator", self.address, "--slsa-job-id", self.job_id,
            "--slsa-spool-dir", str(self.root / "spool" / node.name),
            "--nnodes", nnodes, "--nproc-per-node", str(self.nproc),
            "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"{self.cluster.nodes[0].name}:{self.rdzv_port}",
            "--rdzv-id", self.job_id, "--local-addr", node.address,
            "--max-restarts", str(max_restarts), "--monitor-interval", "0.2",
            *(["--rdzv-conf", rdzv_conf] if rdzv_conf else []),
            "-m", "slsa_dist.exec", str(script), *args],
            env=env, log=f"torchrun-{self.job_id}-{node.name}.log", cwd=self.root)
        self.launchers[node.name] = proc
        return proc

    def wait(self, timeout: float) -> dict[str, int]:
        """Exit codes of every launcher, then the coordinator's; bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for name, proc in self.launchers.items():
            try:
                codes[name] = proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name}: torchrun did not end in {timeout:.0f} s:\n"
                                     f"{self.cluster.log(f'torchrun-{self.job_id}-{name}.log')[-3000:]}")\
                    from None
        assert self.coordinator is not None
        try:
            codes["coordinator"] = self.coordinator.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the coordinator did not end in {timeout:.0f} s:\n"
                                 f"{self.cluster.log(f'coordinator-{self.job_id}.log')[-3000:]}") from None
        return codes

    def logs(self) -> str:
        names = [f"coordinator-{self.job_id}.log",
                 *(f"torchrun-{self.job_id}-{n}.log" for n in self.launchers)]
        return "\n".join(f"--- {n}\n{self.cluster.log(n)[-2500:]}" for n in names)
