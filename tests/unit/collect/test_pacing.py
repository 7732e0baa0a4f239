"""Pacing on the direct path (issue 27 item 6): when a rank reporting straight to the
coordinator makes its first call (agent.start_delay, SLSA_COORDINATOR_RATE), and when a
loaded coordinator tells an answered caller to wait before its next one (pace-ms)."""

from __future__ import annotations

import logging

import pytest

from slsa_dist.collect import _wire as wire
from slsa_dist.collect._agent import (
    CALLS_PER_START,
    DEFAULT_RATE,
    Agent,
    NodeIdentity,
    RankIdentity,
    coordinator_rate,
    start_delay,
)
from slsa_dist.collect._coordinator import MAX_PACE_MS, PACE_AFTER_S, _Admission


def test_each_rank_starts_in_its_own_slot_of_the_coordinators_rate() -> None:
    rate = 1000.0  # calls/s: a rank's start is CALLS_PER_START of them
    slot = CALLS_PER_START / rate
    assert start_delay(0, rate, draw=lambda: 0.0) == 0.0
    assert start_delay(1, rate, draw=lambda: 0.0) == pytest.approx(slot)
    # At a random point within the slot, never in the next one.
    assert start_delay(10, rate, draw=lambda: 0.5) == pytest.approx(10.5 * slot)
    assert start_delay(10, rate, draw=lambda: 0.999) < 11 * slot
    # 65,536 ranks at the default rate: spread over ~4.4 minutes; 8 ranks: 32 ms at most.
    assert start_delay(65_535, DEFAULT_RATE, draw=lambda: 1.0) == pytest.approx(262.144)
    assert start_delay(7, DEFAULT_RATE, draw=lambda: 1.0) <= 0.032
    # No rate: no pacing.
    assert start_delay(65_535, 0.0) == 0.0


def test_the_rate_comes_from_the_launchers_environment() -> None:
    assert coordinator_rate({}) == DEFAULT_RATE
    assert coordinator_rate({"SLSA_COORDINATOR_RATE": "4000"}) == 4000.0
    assert coordinator_rate({"SLSA_COORDINATOR_RATE": "0"}) == 0.0


@pytest.mark.parametrize("bad", ["fast", "-5", "inf", "nan"])
def test_a_bad_rate_is_named_and_the_default_used(bad: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert coordinator_rate({"SLSA_COORDINATOR_RATE": bad}) == DEFAULT_RATE
    assert "SLSA_COORDINATOR_RATE: expected calls per second" in caplog.text
    assert repr(bad) in caplog.text


def test_only_ranks_calling_the_coordinator_themselves_are_paced(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLSA_COORDINATOR_RATE", "4")  # a slot of a second per rank
    monkeypatch.delenv("SLSA_RELAY", raising=False)
    rank = Agent(coordinator="127.0.0.1:1", job_id="j", spool_dir=str(tmp_path),
                 identity=RankIdentity(rank=5, world_size=8, node_id="n"))
    node = Agent(coordinator="127.0.0.1:1", job_id="j", spool_dir=str(tmp_path),
                 identity=NodeIdentity(node_id="n"))
    upload = Agent(coordinator="127.0.0.1:1", job_id="j", spool_dir=str(tmp_path),
                   identity=RankIdentity(rank=5, world_size=8, node_id="n", pid=42))
    monkeypatch.setenv("SLSA_RELAY", "unix:///nonexistent.sock")
    relayed = Agent(coordinator="127.0.0.1:1", job_id="j", spool_dir=str(tmp_path),
                    identity=RankIdentity(rank=5, world_size=8, node_id="n"))
    assert rank._rate == 4.0
    assert rank._not_before > 0
    assert node._rate == upload._rate == relayed._rate == 0.0


def test_a_loaded_coordinator_paces_answered_callers_in_successive_slots() -> None:
    admission = _Admission(4096)
    admission.rate = 1000.0
    assert admission.pace(0.0) is None  # idle: no pacing
    admission.in_flight = int(PACE_AFTER_S * 1000) + 1000  # 2 s of calls ahead
    first, second = admission.pace(0.0), admission.pace(0.0)
    assert first is not None
    assert second is not None
    # The slot after what is ahead, told as 4/3 of it, as a refusal's retry-after.
    assert first == int((2.0 + 0.001) * 4 / 3 * 1000)
    assert second > first
    admission.in_flight = 1_000_000
    assert admission.pace(0.0) == MAX_PACE_MS  # bounded


def test_the_pace_trailer_round_trips() -> None:
    assert wire.pace(wire.pace_trailer(750)) == 0.75
    assert wire.pace((("retry-after-ms", "5"),)) is None
    assert wire.pace(None) is None
    assert wire.pace((("pace-ms", "soon"),)) is None
