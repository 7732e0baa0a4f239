"""A cluster of Linux namespaces on this one machine, for multi-node tests and the demo.

Every member (the coordinator host and each node) is a network namespace with its
own loopback and one address on a private subnet (``10.77.0.0/24``) that exists
only inside namespaces made here; a bridge in a switch namespace of its own joins
them, so nothing is added to the host's network. Processes in a member run under
``unshare --uts`` with the member's host name, and ``ip netns exec`` gives them an
``/etc/hosts`` naming every member (``/etc/netns/<ns>/hosts``). Each node gets its
own software TPM (swtpm on its own loopback) with an enrolled attestation key.

:meth:`Cluster.down` (also on ``with`` exit, after any failure) kills every process
started in a member, deletes the namespaces (which deletes their links) and the
``/etc/netns`` files. Namespaces left by a cluster whose owner died are removed when
the next cluster starts. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["Cluster", "Member", "unavailable"]

SUBNET = "10.77.0"
PREFIX = "slsa-t"
TPM_PORT = 2321
COORDINATOR_PORT = 50051


def unavailable() -> str | None:
    """Why a cluster cannot be made here, or None."""
    if os.geteuid() != 0:
        return "cluster tests need root (network and UTS namespaces)"
    for tool in ("ip", "unshare", "swtpm", "tpm2_quote"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Makefile system packages: iproute2, util-linux, swtpm)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=False)
    if check and done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _kill_namespace(ns: str) -> None:
    """SIGKILL everything in ``ns``, then delete it (its links go with it)."""
    done = _ip("netns", "pids", ns, check=False)
    for pid in done.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", ns, check=False)
    shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


def sweep_stale() -> None:
    """Remove namespaces of clusters whose owning process is gone."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listed:
        ns = line.split(" ")[0]
        if not ns.startswith(PREFIX):
            continue
        owner = ns[len(PREFIX):].split("-")[0]
        if owner.isdigit() and not _alive(int(owner)):
            _kill_namespace(ns)


@dataclass
class Member:
    """One host of the cluster: a namespace, a host name, an address."""

    name: str
    ns: str
    address: str
    index: int
    tcti: str = ""
    ak: str = ""  # the enrolled AK's trusted-list line
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Cluster:
    """``nodes`` node namespaces, a coordinator namespace and a switch, under ``workdir``."""

    def __init__(self, workdir: Path, nodes: int = 3, *, tpm: bool = True) -> None:
        self.workdir = workdir
        self.tag = f"{PREFIX}{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.switch = f"{self.tag}-sw"
        self.coordinator = Member("coordinator", f"{self.tag}-c", f"{SUBNET}.2", 0)
        self.nodes = [Member(f"node{i}", f"{self.tag}-n{i}", f"{SUBNET}.{10 + i}", i + 1)
                      for i in range(nodes)]
        self._tpm = tpm
        self._made: list[str] = []
        self._logs: list[IO[bytes]] = []

    # -- life --------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.down()

    @property
    def members(self) -> list[Member]:
        return [self.coordinator, *self.nodes]

    def up(self) -> None:
        why = unavailable()
        if why is not None:
            raise RuntimeError(why)
        sweep_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{m.address} {m.name}\n" for m in self.members)
        for m in self.members:
            self._add_ns(m.ns)
            port = f"p{m.index}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", m.ns)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", m.ns, "addr", "add", f"{m.address}/24", "dev", "eth0")
            _ip("-n", m.ns, "link", "set", "eth0", "up")
            _ip("-n", m.ns, "link", "set", "lo", "up")
            etc = Path("/etc/netns") / m.ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts)
        if self._tpm:
            for node in self.nodes:
                self._start_tpm(node)

    def down(self) -> None:
        for m in self.members:
            for proc in m.procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
            for proc in m.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        for ns in reversed(self._made):
            _kill_namespace(ns)
        self._made.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)

    # -- processes ---------------------------------------------------------------------

    def command(self, member: Member, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside ``member``: its network, its host name."""
        return ["ip", "netns", "exec", member.ns, "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$@"', member.name, *argv]

    def start(self, member: Member, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              log: str | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``member`` (its own session); output to ``workdir/logs/<log>``."""
        out: Any = subprocess.DEVNULL
        if log is not None:
            (self.workdir / "logs").mkdir(exist_ok=True)
            out = (self.workdir / "logs" / log).open("wb")
            self._logs.append(out)
        proc = subprocess.Popen(self.command(member, argv), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, cwd=cwd,
                                start_new_session=True)
        member.procs.append(proc)
        return proc

    def run(self, member: Member, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``member`` to the end (bounded); raises on a non-zero exit."""
        done = subprocess.run(self.command(member, argv), capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=timeout, check=False)
        if done.returncode:
            raise RuntimeError(f"{member.name}: {' '.join(argv)} exited {done.returncode}: "
                               f"{done.stderr.strip()[-800:]}")
        return done

    def log(self, name: str) -> str:
        path = self.workdir / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    # -- faults ------------------------------------------------------------------------

    def kill(self, member: Member) -> None:
        """The node dies: every process in it is killed (the kernel closes their sockets,
        so peers see the connections end), then its link goes down."""
        pids = [int(p) for p in _ip("netns", "pids", member.ns, check=False).stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(p) and not _zombie(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        _ip("-n", self.switch, "link", "set", f"p{member.index}", "down")

    def revive(self, member: Member) -> None:
        """A replacement for a node that was killed: its link up, its TPM (same state,
        same enrolled AK) running again."""
        _ip("-n", self.switch, "link", "set", f"p{member.index}", "up")
        if self._tpm and member in self.nodes:
            self._start_tpm(member, enroll=False)

    def cut(self, a: Member, b: Member) -> None:
        """No packet between ``a`` and ``b`` (both directions); others still reach both."""
        _ip("-n", a.ns, "route", "add", "unreachable", f"{b.address}/32")
        _ip("-n", b.ns, "route", "add", "unreachable", f"{a.address}/32")

    def heal(self, a: Member, b: Member) -> None:
        _ip("-n", a.ns, "route", "del", "unreachable", f"{b.address}/32", check=False)
        _ip("-n", b.ns, "route", "del", "unreachable", f"{a.address}/32", check=False)

    # -- TPMs --------------------------------------------------------------------------

    def _start_tpm(self, node: Member, *, enroll: bool = True) -> None:
        state = self.workdir / "tpm" / node.name
        state.mkdir(parents=True, exist_ok=True)
        self.start(node, ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                          "--server", f"type=tcp,port={TPM_PORT},bindaddr=127.0.0.1",
                          "--ctrl", f"type=tcp,port={TPM_PORT + 1},bindaddr=127.0.0.1",
                          "--flags", "not-need-init,startup-clear"], log=f"swtpm-{node.name}.log")
        node.tcti = f"swtpm:host=127.0.0.1,port={TPM_PORT}"
        env = {"TPM2TOOLS_TCTI": node.tcti}
        deadline = time.monotonic() + 15
        while True:  # bounded: swtpm listens within a second here
            probe = subprocess.run(self.command(node, ["tpm2_getrandom", "--hex", "4"]),
                                   capture_output=True, env={**os.environ, **env}, timeout=15,
                                   check=False)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name}: swtpm did not answer: {probe.stderr[-300:]!r}")
            time.sleep(0.1)
        if enroll:
            enrolled = self.run(node, [sys.executable, "-m", "slsa_dist.cli", "tpm", "enroll"],
                                env=env, timeout=60)
            node.ak = enrolled.stdout.strip().splitlines()[-1]

    def trusted_aks(self) -> Path:
        """The trusted AK list: one enrolled AK per node."""
        path = self.workdir / "trusted-aks.txt"
        path.write_text("".join(f"{n.ak}\n" for n in self.nodes))
        return path
