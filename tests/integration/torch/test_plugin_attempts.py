"""The launcher plugin numbers attempts by the worker groups it started, so survivors of
a lost node agree on the attempt whichever way torchrun restarted them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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


class _Agent:
    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []

    def record_attempt(self, **attempt: Any) -> None:
        self.attempts.append(attempt)

    def close(self, timeout: float) -> bool:
        del timeout
        return True


def _event(source: str, state: str, rank: int | None = None, code: int | None = None
           ) -> logging.LogRecord:
    """A torchelastic event as torch's ``events.record`` logs it (``Event.serialize``)."""
    md = {"exit_code": [code]} if rank is not None else {}
    event = {"name": f"torchelastic.worker.status.{state}", "source": source, "timestamp": 0,
             "metadata": {"global_rank": rank, "state": state, "metadata": json.dumps(md)}}
    return logging.LogRecord("torchelastic", logging.INFO, __file__, 0, json.dumps(event),
                             None, None)


def test_the_attempt_failed_when_a_worker_did_though_torchrun_says_succeeded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """#27 item 5: torchrun's agent-level SUCCEEDED means its run loop returned; the node
    record said SUCCEEDED with exit codes {0: -15, 1: 3}."""
    node = object.__new__(plugin._Node)
    agent = _Agent()
    node.agent, node.relay, node.finished = agent, None, False  # type: ignore[assignment]
    node.attempt, node.run_id, node.ranks, node.exit_codes, node.failed = 0, "r", [0, 1], {}, False
    monkeypatch.setattr(plugin._Node, "_instance", node)
    handler = plugin.SlsaEventHandler()
    handler.emit(_event("WORKER", "FAILED", rank=0, code=-15))
    handler.emit(_event("WORKER", "FAILED", rank=1, code=3))
    handler.emit(_event("AGENT", "SUCCEEDED"))
    (attempt,) = agent.attempts
    assert (attempt["state"], attempt["exit_codes"]) == ("FAILED", {0: -15, 1: 3})


def test_a_terminated_worker_without_a_code_is_not_given_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    node = object.__new__(plugin._Node)
    agent = _Agent()
    node.agent, node.relay, node.finished = agent, None, False  # type: ignore[assignment]
    node.attempt, node.run_id, node.ranks, node.exit_codes, node.failed = 0, "r", [0, 1], {}, False
    monkeypatch.setattr(plugin._Node, "_instance", node)
    handler = plugin.SlsaEventHandler()
    handler.emit(_event("WORKER", "TERMINATED", rank=0))
    handler.emit(_event("WORKER", "FAILED", rank=1, code=-9))
    handler.emit(_event("AGENT", "SUCCEEDED"))
    (attempt,) = agent.attempts
    assert (attempt["state"], attempt["exit_codes"]) == ("FAILED", {1: -9})
