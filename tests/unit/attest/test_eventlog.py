"""The event-log parser and replay, against tpm2_eventlog (tpm2-tools) on real public logs."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slsa_dist.attest import _eventlog as eventlog
from slsa_dist.errors import InputError

from conftest import ASSETS, need

LOGS = ASSETS / "vectors" / "tpm-eventlog"
FIXTURES = sorted(LOGS.glob("*.bin"))


def _oracle(path: Path) -> dict[str, Any]:
    need(shutil.which("tpm2_eventlog") is not None, "tpm2_eventlog (tpm2-tools) not installed")
    done = subprocess.run(["tpm2_eventlog", str(path)], capture_output=True, text=True,
                          timeout=60, check=True)
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    if isinstance(data["events"], dict):  # a legacy log: tpm2_eventlog writes no list items
        text = done.stdout.replace("\n  PCRIndex:", "\n- PCRIndex:")
        data = yaml.safe_load(text.replace("events:\n", "events:\n", 1))
    return data


def test_the_fixtures_are_there() -> None:
    assert len(FIXTURES) == 9


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_parse_and_replay_equal_tpm2_eventlog(path: Path) -> None:
    oracle = _oracle(path)
    log = eventlog.parse(path.read_bytes())
    expected_pcrs = {bank: {int(k): f"{v:x}".zfill(2 * len(next(iter(log.replay()[bank]
                                                                    .values()))))
                            if isinstance(v, int) else str(v).removeprefix("0x")
                            for k, v in values.items()}
                     for bank, values in (oracle.get("pcrs") or {}).items() if values}
    replayed = {bank: {pcr: value.hex() for pcr, value in values.items()}
                for bank, values in log.replay().items() if values}
    assert replayed == expected_pcrs
    events = oracle["events"]
    assert len(events) == len(log.events)
    for mine, theirs in zip(log.events, events, strict=True):
        assert mine.pcr == theirs["PCRIndex"]
        assert mine.type_name == theirs["EventType"]
        if "EventNum" in theirs:
            assert mine.index == theirs["EventNum"]
        if "Digests" in theirs:
            assert {d["AlgorithmId"]: d["Digest"] for d in theirs["Digests"]} \
                == {name: digest.hex() for name, digest in mine.digests.items()}
        assert len(mine.data) == theirs["EventSize"]


def test_a_legacy_log_is_sha1_only() -> None:
    log = eventlog.parse((LOGS / "event-uefi-sha1-log.bin").read_bytes())
    assert log.legacy
    assert log.algorithms == ("sha1",)
    crypto_agile = eventlog.parse((LOGS / "event-gce-ubuntu-2104-log.bin").read_bytes())
    assert not crypto_agile.legacy
    assert crypto_agile.algorithms == ("sha1", "sha256", "sha384")


def test_a_startup_locality_sets_pcr0s_reset_value() -> None:
    header = (eventlog.parse((LOGS / "event.bin").read_bytes()).events[0].data)
    digest = bytes(range(32))
    log = (struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(header)) + header
           + struct.pack("<IIIH", 0, 3, 0, 0)[:12] + struct.pack("<I", 17)
           + b"StartupLocality\0" + b"\x03"
           + struct.pack("<IIIH", 0, 8, 1, 0x000B) + digest + struct.pack("<I", 0))
    parsed = eventlog.parse(log)
    assert parsed.startup_locality == 3
    assert parsed.replay()["sha256"][0] == hashlib.sha256(bytes(31) + b"\x03" + digest).digest()


@pytest.mark.parametrize(("cut", "message"), [
    (10, "event log: expected 20 bytes of event 0 SHA-1 digest at offset 8, found 2"),
    (0, "event log: expected at least one event, found 0 bytes"),
])
def test_a_truncated_log_is_refused(cut: int, message: str) -> None:
    data = (LOGS / "event.bin").read_bytes()[:cut]
    with pytest.raises(InputError) as info:
        eventlog.parse(data)
    assert str(info.value) == message


def test_a_truncated_last_event_names_it() -> None:
    data = (LOGS / "event.bin").read_bytes()
    with pytest.raises(InputError, match=r"event log: expected 16 bytes of event 1 data"):
        eventlog.parse(data[:-1])


def test_a_bank_hashlib_cannot_replay_is_read_past() -> None:
    """A header declaring SM3-256 too: its digests are skipped, the others replayed."""
    sm3 = 0x0012
    header = (b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 2)
              + struct.pack("<HHHH", 0x000B, 32, sm3, 32) + b"\0")
    digest = bytes(range(32))
    log = (struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(header)) + header
           + struct.pack("<IIIH", 5, 4, 2, 0x000B) + digest + struct.pack("<H", sm3)
           + bytes(32) + struct.pack("<I", 4) + b"\0\0\0\0")
    parsed = eventlog.parse(log)
    assert parsed.algorithms == ("sha256",)
    assert parsed.events[1].digests == {"sha256": digest}
    assert parsed.replay() == {"sha256": {5: hashlib.sha256(bytes(32) + digest).digest()}}
