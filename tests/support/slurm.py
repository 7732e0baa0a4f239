"""A real Slurm cluster (Debian's slurmctld, slurmd, munge) on a namespace cluster.

slurmctld runs in the coordinator's namespace, one slurmd per node namespace (its
own host name and address); munged is one daemon on this machine, reached by
every namespace through its Unix socket. Everything Slurm writes lives under the
cluster's work folder, with its own ``slurm.conf`` (``SLURM_CONF``): no cgroups,
no accounting database. Commands (``sbatch``, ``scontrol``) run in the
coordinator's namespace, where slurmctld listens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.cluster import Cluster, Member

__all__ = ["Slurm", "unavailable"]

_CGROUP_V1 = (
    "mount -t tmpfs cgroup_root /sys/fs/cgroup && "
    "for c in cpu cpuacct cpuset memory devices freezer; do "
    "mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || exit 1; "
    "done && ")
DAEMONS = ("slurmctld", "slurmd", "sbatch", "scontrol", "munged", "munge")


def unavailable() -> str | None:
    for tool in DAEMONS:
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian packages slurmctld, slurmd, slurm-client, munge)"
    if not Path("/etc/munge/munge.key").exists():
        return "no munge key at /etc/munge/munge.key (the munge package creates it)"
    return None


class Slurm:
    """slurmctld + one slurmd per node of ``cluster`` (started by :meth:`up`)."""

    def __init__(self, cluster: Cluster, nodes: Sequence[Member]) -> None:
        self.cluster = cluster
        self.nodes = list(nodes)
        self.root = cluster.workdir / "slurm"
        self.conf = self.root / "slurm.conf"
        self._munged: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def up(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        controller = self.cluster.coordinator
        (self.root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n"
                                               "CgroupMountpoint=/sys/fs/cgroup\n")
        nodes = "".join(f"NodeName={n.name} NodeAddr={n.address} CPUs=2 State=UNKNOWN\n"
                        for n in self.nodes)
        self.conf.write_text(f"""\
ClusterName=slsatest
SlurmctldHost={controller.name}({controller.address})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool/%n
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd-%n.pid
SlurmctldLogFile={self.root}/log/slurmctld.log
SlurmdLogFile={self.root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
{nodes}PartitionName=debug Nodes={','.join(n.name for n in self.nodes)} Default=YES \
MaxTime=INFINITE State=UP
""")
        self.cluster.start(controller, ["slurmctld", "-D", "-i", "-f", str(self.conf)],
                           env=self.env, log="slurmctld.out")
        for node in self.nodes:
            (self.root / "spool" / node.name).mkdir(parents=True, exist_ok=True)
            # `ip netns exec` remounts /sys for the namespace, without cgroups; slurmd
            # needs a cgroup file system even when no cgroup plugin tracks tasks.
            # This machine has cgroup v1 hierarchies (Slurm refuses v2 mixed with them):
            # they are mounted again in slurmd's own mount namespace.
            self.cluster.start(node, ["sh", "-c", _CGROUP_V1 +
                                      'exec slurmd -D -N "$0" -f "$1"', node.name,
                                      str(self.conf)],
                               env=self.env, log=f"slurmd-{node.name}.out")
        deadline = time.monotonic() + 60
        while True:  # bounded: every node idle, or say why not
            shown = self.scontrol("show", "nodes", check=False)
            states = re.findall(r"State=(\S+)", shown)
            if len(states) == len(self.nodes) and all(s.startswith("IDLE") for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm nodes not idle after 60 s: {states}\n"
                                   f"{self.log('slurmctld.log')[-1500:]}")
            time.sleep(0.5)

    def _start_munge(self) -> None:
        probe = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=False)
        if probe.returncode == 0:
            return  # a munged is already serving this machine
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        self._munged = subprocess.Popen(["munged", "--foreground", "--force"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["munge", "-n"], capture_output=True, timeout=10,
                             check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("munged did not start")
            time.sleep(0.1)

    def down(self) -> None:
        if self._munged is not None:
            self._munged.terminate()
            try:
                self._munged.wait(10)
            except subprocess.TimeoutExpired:
                self._munged.kill()

    def scontrol(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(self.cluster.command(self.cluster.coordinator, ["scontrol", *args]),
                              capture_output=True, text=True, timeout=30, check=False,
                              env={**os.environ, **self.env})
        if check and done.returncode:
            raise RuntimeError(f"scontrol {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def sbatch(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> int:
        """Submit; returns the job id."""
        done = subprocess.run(self.cluster.command(self.cluster.coordinator,
                                                   ["sbatch", "--parsable", *argv]),
                              capture_output=True, text=True, timeout=30, check=False,
                              env={**os.environ, **self.env, **env}, cwd=cwd)
        if done.returncode:
            raise RuntimeError(f"sbatch: {done.stderr.strip()}")
        return int(done.stdout.strip().split(";")[0])

    def wait(self, job: int, timeout: float) -> str:
        """The job's final state (COMPLETED, FAILED, ...), waiting at most ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.scontrol("show", "job", str(job), check=False)
            state = re.search(r"JobState=(\S+)", shown)
            if state and state.group(1) not in ("PENDING", "RUNNING", "CONFIGURING",
                                                 "COMPLETING"):
                return state.group(1)
            if time.monotonic() > deadline:
                self.scontrol("cancel", str(job), check=False)
                raise AssertionError(f"slurm job {job} still {state and state.group(1)} after "
                                     f"{timeout:.0f} s")
            time.sleep(0.5)

    def log(self, name: str) -> str:
        path = self.root / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""
