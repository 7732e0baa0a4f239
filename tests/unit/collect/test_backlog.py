"""When a caller refused for memory is told to come back (coordinator._Backlog)."""

from __future__ import annotations

from slsa_dist.collect._coordinator import MAX_RETRY_AFTER_MS, RETRY_AFTER_MS, _Backlog

MIB = 1 << 20


def test_refused_callers_are_given_successive_slots_not_one_delay() -> None:
    backlog = _Backlog(MIB)  # serves 1 MiB/s until it has measured
    # Each refusal waits for those before it: told 4/3 of its slot, as agents wait 0.5 to
    # 1.0 times what they are told.
    assert [backlog.refuse(MIB, now=0.0) for _ in range(3)] == [1333, 2666, 4000]


def test_the_rate_served_in_the_last_second_sets_the_slots() -> None:
    backlog = _Backlog(MIB)
    backlog.released(2 * MIB, now=backlog._window[0] + 0.5)
    backlog.released(2 * MIB, now=backlog._window[0] + 1.0)  # 4 MiB in a second
    assert backlog.refuse(4 * MIB, now=100.0) == 1333


def test_the_wait_is_bounded_both_ways() -> None:
    backlog = _Backlog(64 * MIB)
    assert backlog.refuse(1024, now=0.0) == RETRY_AFTER_MS
    assert backlog.refuse(10_000 * MIB, now=0.0) == MAX_RETRY_AFTER_MS
