"""Real Slurm: ``sbatch launch/slurm/train.sbatch`` on 2 nodes x 2 ranks, as users run it.

slurmctld in the coordinator's namespace, a slurmd in each node's; the batch
script issues the job's certificates, runs the coordinator on the first node
with ``srun`` and ``slsa-torchrun`` on every node, and verifies the bundle.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._formats import read_bundle

from conftest import need
from support.cluster import Cluster
from support.slurm import Slurm, unavailable

pytestmark = [pytest.mark.cluster, pytest.mark.torchrun, pytest.mark.tpm, pytest.mark.timeout(300)]

ROOT = Path(__file__).parents[3]
TRAIN = ROOT / "tests" / "assets" / "cluster_train.py"


@pytest.fixture(scope="module")
def slurm(cluster: Cluster) -> Iterator[Slurm]:
    why = unavailable()
    need(why is None, f"slurm: {why}")
    made = Slurm(cluster, cluster.nodes[:2])
    try:
        made.up()
        yield made
    finally:
        made.down()


@pytest.fixture(scope="module")
def slurm_job(slurm: Slurm, cluster: Cluster, cluster_key: Path) -> tuple[int, Path]:
    submit = cluster.workdir / "slurm-submit"
    submit.mkdir()
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "NPROC_PER_NODE": "2", "SLSA_KEY": str(cluster_key),
           "SLSA_OUT": str(submit / "provenance"), "TPM2TOOLS_TCTI": cluster.nodes[0].tcti,
           "GLOO_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1",
           "SLSA_ARTIFACT_ROOT": str(submit)}
    job = slurm.sbatch(["--nodes=2", f"--output={submit}/slurm-%j.out",
                        str(ROOT / "launch" / "slurm" / "train.sbatch"), str(TRAIN),
                        "--data", str(cluster.workdir / "data"), "--out", str(submit / "train"),
                        "--epochs", "2"], env=env, cwd=submit)
    state = slurm.wait(job, timeout=240)
    output = (submit / f"slurm-{job}.out").read_text(errors="replace")
    assert state == "COMPLETED", output[-4000:] + slurm.log("slurmctld.log")[-2000:]
    return job, submit


def test_sbatch_gives_one_bundle_of_4_ranks_on_2_slurm_nodes(
        slurm_job: tuple[int, Path]) -> None:
    job, submit = slurm_job
    bundle = submit / "provenance" / f"slurm-{job}.intoto.jsonl"
    (envelope,) = read_bundle(bundle)
    provenance = Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))
    assert provenance.world_size == 4
    ranks = provenance.rank_records()
    assert [r.rank for r in ranks] == [0, 1, 2, 3]
    assert all(r.completed and r.samples > 0 for r in ranks)
    assert sorted({r.node for r in ranks}) == ["node0", "node1"]
    nodes = {n.node: n for n in provenance.node_records()}
    assert sorted(nodes) == ["node0", "node1"]
    for record in nodes.values():
        (tpm,) = [e for e in record.evidence if e.kind == "tpm"]
        assert tpm.status == "verified"
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete, completeness.problems
    # the batch script verified the bundle itself, and said so
    output = (submit / f"slurm-{job}.out").read_text(errors="replace")
    assert "\nverified" in output or output.startswith("verified"), output[-2000:]
