"""The coordinator's flow control for large relay calls (coordinator._Room)."""

from __future__ import annotations

import asyncio

import pytest

from slsa_dist.collect import _coordinator as coordinator_module
from slsa_dist.collect._coordinator import _Room


def test_room_is_granted_in_the_order_asked_once_there_is_some() -> None:
    async def scenario() -> list[str]:
        room = _Room(100)
        assert room.hold("", 80)  # a call in progress
        order: list[str] = []

        async def ask(node: str, size: int) -> None:
            await room.reserve(node, size)
            order.append(node)

        waiting = [asyncio.create_task(ask(n, 30)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        assert order == []  # 80 + 30 > 100: everyone waits, in order
        room.release(80)
        await asyncio.sleep(0)
        assert order == ["a", "b", "c"]  # 90 of 100 reserved
        assert room.reserved == 90
        assert not room.hold("", 20)  # an unreserved call finds no room
        assert room.hold("b", 30)  # b's call, reserved, goes through
        assert (room.held, room.reserved) == (30, 60)
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_grant_no_call_follows_lapses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_module, "GRANT_SECONDS", 0.01)

    async def scenario() -> tuple[int, int]:
        room = _Room(100)
        await room.reserve("a", 60)
        during = room.reserved
        await asyncio.sleep(0.05)
        return during, room.reserved

    assert asyncio.run(scenario()) == (60, 0)


def test_a_relay_that_gives_up_leaves_the_queue() -> None:
    async def scenario() -> int:
        room = _Room(100)
        assert room.hold("", 100)
        asking = asyncio.create_task(room.reserve("a", 10))
        await asyncio.sleep(0)
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        room.release(100)
        return room.reserved

    assert asyncio.run(scenario()) == 0


def test_a_request_larger_than_the_room_goes_when_it_is_empty() -> None:
    async def scenario() -> int:
        room = _Room(100)
        await room.reserve("a", 500)
        return room.reserved

    assert asyncio.run(scenario()) == 500
