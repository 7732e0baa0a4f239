"""The launcher plugin numbers attempts by the worker groups it started, so survivors of
a lost node agree on the attempt whichever way torchrun restarted them."""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.integrations import _torch_plugin as plugin
from slsa_dist.sign._keys import Signer

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]


def worker_env(rank: int, restart_count: int) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0",
            "TORCHELASTIC_RUN_ID": "run-1", "TORCHELASTIC_RESTART_COUNT": str(restart_count)}


def test_a_membership_restart_is_a_new_attempt_though_torchrun_does_not_count_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with CoordinatorThread(job_id="attempts", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=4, min_world_size=2, settle=0.2) as server:
        monkeypatch.setenv("SLSA_COORDINATOR", server.address)
        monkeypatch.setenv("SLSA_JOB_ID", "attempts")
        monkeypatch.setenv("SLSA_SPOOL_DIR", str(tmp_path / "spool"))
        monkeypatch.setattr(plugin._Node, "_instance", None)
        specs = plugin.SlsaLogsSpecs(log_dir=str(tmp_path / "logs"))
        try:
            # the first worker group, then a restart for a membership change: torchrun
            # keeps its restart count at 0 for it
            seen = []
            for _ in range(2):
                envs = {0: worker_env(0, restart_count=0), 1: worker_env(1, restart_count=0)}
                specs.reify(envs)
                seen.append({env["SLSA_ATTEMPT"] for env in envs.values()})
            assert seen == [{"0"}, {"1"}]
        finally:
            node = plugin._Node.existing()
            if node is not None:
                node.run_finished("SUCCEEDED")
