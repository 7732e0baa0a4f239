"""Pacing on the direct path (issue 27 item 6): ranks that report straight to the
coordinator register spread at the rate it serves (SLSA_COORDINATOR_RATE), not all at
once; the events recorded meanwhile arrive; a rank that exits before its slot still
delivers within its flush bound; a loaded coordinator's pace-ms delays the next call."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.collect._agent import CALLS_PER_START, Agent, RankIdentity
from slsa_dist.collect._coordinator import Coordinator, CoordinatorThread
from slsa_dist.sign._keys import Signer

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(90)]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _registrations(coordinator: Coordinator) -> dict[int, float]:
    """When each rank's registration reached the coordinator (time.monotonic())."""
    seen: dict[int, float] = {}
    register = coordinator.register_rank

    async def noted(request: Any, principal: Any) -> Any:
        seen.setdefault(request.rank, time.monotonic())
        return await register(request, principal)

    coordinator.register_rank = noted  # type: ignore[method-assign]
    return seen


def _wait_for(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_ranks_started_together_register_spread_at_the_rate_and_lose_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world, rate = 64, 128.0  # a start is CALLS_PER_START calls: a rank every 31 ms
    slot = CALLS_PER_START / rate
    monkeypatch.setenv("SLSA_COORDINATOR_RATE", str(rate))
    monkeypatch.delenv("SLSA_RELAY", raising=False)
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=world, settle=0.1) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        seen = _registrations(coordinator)
        start = time.monotonic()
        ranks = [Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                       identity=RankIdentity(rank=r, world_size=world, node_id=f"n{r // 8}"))
                 for r in range(world)]
        for rank, agent in enumerate(ranks):  # the training code never waits for the slot
            for step in range(4):
                agent.record_shard(f"s{step}", {"sha256": _sha(f"s{step}")}, samples=8)
            agent.record_file("final", f"__{rank}_0.distcp", {"sha256": _sha(str(rank))},
                              role="final")
            agent.complete()
        recorded = time.monotonic() - start
        # Delivered without a flush (which would cut the wait short): by the pacing alone.
        assert _wait_for(lambda: coordinator.state.events == world * 6, 30), \
            coordinator.state.events
        try:
            assert all(a.close(10) for a in ranks)
            assert not any(a.stats().errors for a in ranks)
            result = server.wait_finalized(30)
        finally:
            for agent in ranks:
                agent.close(1)
    assert result.complete
    assert sorted(seen) == list(range(world))
    # Each rank registered no earlier than its slot, and the whole job over ~2 s, in
    # rank order: not all at once.
    for rank, when in seen.items():
        assert when - start >= rank * slot - 0.01, (rank, when - start)
    spread = max(seen.values()) - min(seen.values())
    assert spread >= 0.5 * world * slot, spread  # (rank 0's first connection is slow)
    # ~8 a quarter-second; a busy host may bunch some, never the 64 at once.
    busiest = max(sum(1 for t in seen.values() if s <= t < s + 0.25) for s in seen.values())
    assert busiest <= world // 2, busiest
    assert recorded < 1.0  # recording never waited for a slot


def test_a_rank_exiting_before_its_slot_delivers_within_its_flush_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLSA_COORDINATOR_RATE", "4")  # rank 1000: a slot ~17 minutes away
    monkeypatch.delenv("SLSA_RELAY", raising=False)
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=1001) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        agent = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                      identity=RankIdentity(rank=1000, world_size=1001, node_id="n"))
        assert agent._not_before - time.monotonic() > 900
        agent.record_shard("s", {"sha256": _sha("s")}, samples=1)
        agent.complete()
        time.sleep(0.3)
        assert coordinator.state.events == 0  # still waiting for its slot
        start = time.monotonic()
        assert agent.close(10)  # at exit: the wait is cut short, nothing spooled
        assert time.monotonic() - start < 5
        assert coordinator.state.events == 2
    assert not list((tmp_path / "sp" / "j").glob("*.spool")) or all(
        p.stat().st_size == 0 for p in (tmp_path / "sp" / "j").glob("*.spool"))


def test_a_loaded_coordinators_pace_delays_the_next_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLSA_COORDINATOR_RATE", "0")  # no start slot: only the pace
    monkeypatch.delenv("SLSA_RELAY", raising=False)
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=1) as server:
        coordinator = server.coordinator
        assert coordinator is not None
        seen = _registrations(coordinator)
        reports: list[float] = []
        accept = coordinator.accept_batch

        async def noted(request: Any, principal: Any) -> Any:
            reports.append(time.monotonic())
            return await accept(request, principal)

        coordinator.accept_batch = noted  # type: ignore[method-assign]
        coordinator.admission.pace = lambda now: 800  # type: ignore[method-assign]
        agent = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n"))
        agent.record_shard("s", {"sha256": _sha("s")}, samples=1)
        assert _wait_for(lambda: coordinator.state.events == 1, 10)
        agent.complete()
        assert agent.close(10)
    # Told 800 ms: waited 0.5 to 1.0 times that (jitter) before the report.
    assert reports
    assert reports[0] - seen[0] >= 0.4 - 0.05
