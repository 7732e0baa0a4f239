"""Item 23: ``invocationId`` is globally unique: the job id plus a run UUID.

Two runs under the same job id (a rerun, another cluster) had the same
invocationId, so a consumer could not tell their provenance apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle

from support.background import signing_key
from support.chains import run_step
from support.sim import Cluster, done

RUN = re.compile(r"^job-1/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_two_runs_of_one_job_id_have_distinct_invocation_ids() -> None:
    ids = []
    for _ in range(2):
        cluster = Cluster(world_size=1)
        cluster.rank(0).report(done())
        provenance = cluster.finalize()
        assert RUN.match(provenance.invocation_id or ""), provenance.invocation_id
        assert provenance.job_id == "job-1"
        ids.append(provenance.invocation_id)
    assert ids[0] != ids[1]


def test_a_restarted_coordinator_keeps_its_run_id(tmp_path: Path) -> None:
    signer = Signer.generate()
    kwargs = {"job_id": "job-1", "signer": signer, "out_dir": tmp_path, "world_size": 1}
    with CoordinatorThread(**kwargs) as first:
        run_id = first.coordinator.state.run_id  # type: ignore[union-attr]
    with CoordinatorThread(**kwargs) as again:  # same journal
        assert again.coordinator.state.run_id == run_id  # type: ignore[union-attr]


def test_single_steps_are_unique_too(tmp_path: Path) -> None:
    key, public = signing_key(tmp_path)
    out = tmp_path / "o.txt"
    bundle = run_step(tmp_path, key, "prep-1", f"open({str(out)!r}, 'w').write('x')", out, [])
    provenance = verify_bundle(bundle, keys=[load_verifier(public)]).provenance
    assert (provenance.invocation_id or "").startswith("prep-1/")
    assert provenance.job_id == "prep-1"
