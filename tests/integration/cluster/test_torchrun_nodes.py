"""Three nodes in network namespaces: torchrun's c10d rendezvous across them, mutual TLS
to a coordinator in a fourth, one software TPM per node, DCP checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle

from examples.demo import data as demo_data
from support.cluster import Cluster
from support.clusterjob import ClusterJob

pytestmark = [pytest.mark.cluster, pytest.mark.torchrun, pytest.mark.tpm, pytest.mark.timeout(300)]

TRAIN = Path(demo_data.__file__).parent / "train.py"


@pytest.fixture(scope="module")
def three_nodes(cluster: Cluster, cluster_key: Path) -> ClusterJob:
    job = ClusterJob(cluster, "three-nodes", cluster.workdir / "three-nodes", cluster_key,
                     world_size=6, port=50061, rdzv_port=29501)
    job.issue(cluster.nodes)
    job.start_coordinator()
    for node in cluster.nodes:
        job.start_node(node, TRAIN, ["--data", str(cluster.workdir / "data"), "--out",
                                     str(job.root / "train"), "--epochs", "2"], nnodes="3")
    codes = job.wait(timeout=200)
    assert codes == {"node0": 0, "node1": 0, "node2": 0, "coordinator": 0}, job.logs()
    return job


def provenance_of(job: ClusterJob) -> Provenance:
    (envelope,) = read_bundle(job.bundle)
    return Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


def test_one_bundle_six_ranks_on_three_distinct_nodes(three_nodes: ClusterJob) -> None:
    provenance = provenance_of(three_nodes)
    assert provenance.world_size == 6
    ranks = provenance.rank_records()
    assert [r.rank for r in ranks] == list(range(6))
    assert all(r.completed and r.samples > 0 for r in ranks)
    by_node: dict[str, list[int]] = {}
    for record in ranks:
        (node,) = record.nodes()
        by_node.setdefault(node, []).append(record.rank)
    assert sorted(by_node) == ["node0", "node1", "node2"]
    assert all(len(r) == 2 for r in by_node.values())
    nodes = {n.node: n for n in provenance.node_records()}
    assert sorted(nodes) == ["node0", "node1", "node2"]
    # each node record is the host it ran on: its name, and the address the coordinator
    # saw it connect from (its own observation, over mutual TLS with the node's certificate)
    for name, record in nodes.items():
        assert record.hostname == name
        assert record.connected_from == three_nodes.cluster.nodes[int(name[-1])].address
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete, completeness


def test_every_node_is_reappraised_from_its_own_tpm(three_nodes: ClusterJob) -> None:
    provenance = provenance_of(three_nodes)
    fingerprints = {n.name: n.ak.split()[0] for n in three_nodes.cluster.nodes}
    assert len(set(fingerprints.values())) == 3  # three TPMs, three AKs
    for record in provenance.node_records():
        (tpm,) = [e for e in record.evidence if e.kind == "tpm"]
        assert tpm.status == "verified", tpm
    done = subprocess.run(
        [sys.executable, "-m", "slsa_dist.cli", "verify", str(three_nodes.bundle),
         "--key", str(three_nodes.key.with_suffix(".pub")),
         "--builder-id", "https://slsa-dist.dev/builders/local/v1",
         "--artifact", str(three_nodes.root / "train" / "final"),
         "--require-attestation", "tpm", "--trusted-aks",
         str(three_nodes.cluster.trusted_aks())],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified" in done.stdout


def test_a_quote_by_another_nodes_ak_does_not_count(three_nodes: ClusterJob) -> None:
    # Trust only node0's and node1's AKs: node2's quote must not satisfy the policy.
    trusted = three_nodes.root / "two-aks.txt"
    trusted.write_text("".join(f"{n.ak}\n" for n in three_nodes.cluster.nodes[:2]))
    done = subprocess.run(
        [sys.executable, "-m", "slsa_dist.cli", "verify", str(three_nodes.bundle),
         "--key", str(three_nodes.key.with_suffix(".pub")),
         "--require-attestation", "tpm", "--trusted-aks", str(trusted)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "node2" in done.stdout + done.stderr
