"""A real multi-node Ray cluster: ``ray start --head`` in one node's namespace and
``ray start --address`` in another; Ray Train with the slsa-dist callback reports to
a coordinator on mutual TLS in a third (no loopback shortcut anywhere)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle

from conftest import need
from support.cluster import Cluster
from support.clusterjob import SLSA, ClusterJob, slsa

pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.tpm, pytest.mark.timeout(300)]

DRIVER = Path(__file__).parents[2] / "assets" / "ray_cluster_driver.py"
RAY = str(Path(sys.executable).parent / "ray")
RAY_TOKEN = secrets.token_hex(32)
NODES = """
import json, ray
ray.init(address="{address}", log_to_driver=False)
print(json.dumps({{n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}}))
"""


@pytest.fixture(scope="module")
def ray_nodes(cluster: Cluster) -> Iterator[dict[str, str]]:
    """Ray on node0 (head) and node1; the Ray node id of each, by cluster node name."""
    need(Path(RAY).exists(), "ray not installed (pip extra 'ray')")
    head, worker = cluster.nodes[:2]
    address = f"{head.address}:6379"
    temp = Path(f"/tmp/slsa-ray-{os.getpid()}")  # Unix socket paths must stay short
    # Ray 2.60 turns on token authentication for a cluster: every node and the driver
    # present the same token.
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": RAY_TOKEN}
    common = ["--num-cpus", "2", "--block", "--disable-usage-stats"]
    try:
        cluster.start(head, [RAY, "start", "--head", "--node-ip-address", head.address,
                             "--port", "6379", "--include-dashboard", "false",
                             "--temp-dir", str(temp), *common], env=env, log="ray-head.log")
        cluster.start(worker, [RAY, "start", "--address", address, "--node-ip-address",
                               worker.address, *common], env=env, log="ray-worker.log")
        deadline = time.monotonic() + 120
        while True:  # bounded: both nodes alive, or say what the logs say
            done = subprocess.run(cluster.command(head, [sys.executable, "-c",
                                                         NODES.format(address=address)]),
                                  capture_output=True, text=True, timeout=120, check=False,
                                  env={**os.environ, **env})
            ids = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 \
                else {}
            if len(ids) == 2:
                yield {head.name: ids[head.address], worker.name: ids[worker.address]}
                return
            assert time.monotonic() < deadline, (done.stderr[-2000:] +
                                                 cluster.log("ray-head.log")[-2000:])
            time.sleep(1)
    finally:
        for node in (worker, head):  # `ray stop` in each namespace; the cluster kills the rest
            subprocess.run(cluster.command(node, [RAY, "stop", "--force"]), capture_output=True,
                           timeout=60, check=False)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_job(cluster: Cluster, cluster_key: Path, ray_nodes: dict[str, str]) -> ClusterJob:
    job = ClusterJob(cluster, "ray-nodes", cluster.workdir / "ray-nodes", cluster_key,
                     world_size=2, port=50091)
    job.issue([])
    for ray_id in [*ray_nodes.values(), "ray-controller"]:  # a certificate per Ray node id
        slsa("ca", "issue", "--ca", str(job.pki / "ca"), "--role", "node", "--name", ray_id,
             "--out", str(job.pki / f"node-{ray_id}"))
    job.start_coordinator()
    head = cluster.nodes[0]
    driver = cluster.start(head, [sys.executable, str(DRIVER), f"{head.address}:6379",
                                  str(job.root / "ray-results")],
                           env={"SLSA_COORDINATOR": job.address, "SLSA_JOB_ID": job.job_id,
                                "SLSA_TLS_DIR": str(job.pki / "node-{node}"),
                                "TPM2TOOLS_TCTI": head.tcti, "GLOO_SOCKET_IFNAME": "eth0",
                                "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "token",
                                "RAY_AUTH_TOKEN": RAY_TOKEN},
                           log="ray-driver.log", cwd=job.root)
    job.launchers["driver"] = driver
    codes = job.wait(timeout=240)
    assert codes == {"driver": 0, "coordinator": 0}, (
        cluster.log("ray-driver.log")[-3000:] + cluster.log("coordinator-ray-nodes.log")[-2000:])
    return job


def test_both_ray_nodes_inventory_and_evidence_and_checkpoints_where_written(
        ray_job: ClusterJob, ray_nodes: dict[str, str]) -> None:
    (envelope,) = read_bundle(ray_job.bundle)
    provenance = Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))
    ranks = {r.rank: r for r in provenance.rank_records()}
    assert sorted(ranks) == [0, 1]
    assert {ranks[r].node for r in ranks} == set(ray_nodes.values())  # one worker per node
    nodes = {n.node: n for n in provenance.node_records()}
    for name, ray_id in ray_nodes.items():
        record = nodes[ray_id]
        assert record.hostname == name
        assert record.connected_from == ray_job.cluster.nodes[int(name[-1])].address
        assert record.inventory.get("software") or record.inventory.get("python")
        (tpm,) = {e.kind: e for e in record.evidence if e.kind == "tpm"}.values()
        assert tpm.status == "verified", tpm
    for rank, record in ranks.items():  # each worker digested its own file, where written
        written = {f.path for f in record.files}
        assert f"model-rank{rank}.pt" in written, written
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete, completeness.problems
    # Ray names a node by its Ray node id: the trusted AK list names them that way
    trusted = ray_job.root / "trusted-aks.txt"
    trusted.write_text("".join(f"{node.ak.split()[0]} {ray_nodes[node.name]}\n"
                               for node in ray_job.cluster.nodes[:2]))
    done = subprocess.run([*SLSA, "verify", str(ray_job.bundle), "--key",
                           str(ray_job.key.with_suffix(".pub")), "--require-attestation", "tpm",
                           "--trusted-aks", str(trusted)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
