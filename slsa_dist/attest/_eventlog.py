"""The measured-boot event log: parsed, replayed per PCR bank, compared with a quote.

The firmware extends each boot measurement into a PCR and appends an event to a log
(Linux exposes it as ``/sys/kernel/security/tpm0/binary_bios_measurements``). The log
is not protected by itself: only replaying it (PCR := H(PCR || digest), event by event,
from the reset value) and comparing the result with PCR values signed by the TPM ties
its events to the platform. An event whose digests replay to the quoted values is
proven to have been measured; its data (the description beside the digest) is not.

Formats (TCG PC Client Platform Firmware Profile, 10): the *crypto-agile* log starts
with a SHA-1-format ``TCG_PCClientPCREvent`` of type ``EV_NO_ACTION`` whose data is the
``Spec ID Event03`` header (the digest algorithms and their sizes); every later event
is a ``TCG_PCR_EVENT2`` with one digest per algorithm. A *legacy* log (TPM 1.2 style,
no header) is all ``TCG_PCClientPCREvent`` with SHA-1 digests: it is parsed and
replayed for the SHA-1 bank only. All integers are little-endian.

``EV_NO_ACTION`` events are never extended. A ``StartupLocality`` ``EV_NO_ACTION``
event sets PCR 0's reset value to the locality the firmware started from (10.4.5.3).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from slsa_dist.errors import InputError

__all__ = ["ALGORITHMS", "EV_NO_ACTION", "TYPES_BY_NAME", "Event", "EventLog", "parse", "type_name"]

# TPM_ALG_ID -> (hashlib name, digest size): the banks this module replays. Digests of
# any other algorithm the header declares (SM3-256, ...) are read past, never replayed.
ALGORITHMS: Mapping[int, tuple[str, int]] = {
    0x0004: ("sha1", 20), 0x000B: ("sha256", 32), 0x000C: ("sha384", 48),
    0x000D: ("sha512", 64)}
EV_NO_ACTION = 0x00000003
_SPEC_ID = b"Spec ID Event03\0"
_STARTUP_LOCALITY = b"StartupLocality\0"
_MAX_EVENT_DATA = 1 << 24  # no event is bigger; a larger size is a corrupt log
# TCG PC Client Platform Firmware Profile 10.4.1: event types.
_TYPES = {
    0x00000000: "EV_PREBOOT_CERT", 0x00000001: "EV_POST_CODE", 0x00000002: "EV_UNUSED",
    0x00000003: "EV_NO_ACTION", 0x00000004: "EV_SEPARATOR", 0x00000005: "EV_ACTION",
    0x00000006: "EV_EVENT_TAG", 0x00000007: "EV_S_CRTM_CONTENTS",
    0x00000008: "EV_S_CRTM_VERSION", 0x00000009: "EV_CPU_MICROCODE",
    0x0000000A: "EV_PLATFORM_CONFIG_FLAGS", 0x0000000B: "EV_TABLE_OF_DEVICES",
    0x0000000C: "EV_COMPACT_HASH", 0x0000000D: "EV_IPL", 0x0000000E: "EV_IPL_PARTITION_DATA",
    0x0000000F: "EV_NONHOST_CODE", 0x00000010: "EV_NONHOST_CONFIG",
    0x00000011: "EV_NONHOST_INFO", 0x00000012: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION", 0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION", 0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES", 0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2", 0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT", 0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB", 0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG"}
TYPES_BY_NAME = {name: value for value, name in _TYPES.items()}


def type_name(event_type: int) -> str:
    """``EV_SEPARATOR`` and the like; an unknown type as ``0x...``."""
    return _TYPES.get(event_type, f"{event_type:#010x}")


@dataclass(frozen=True)
class Event:
    """One event: its position in the log (0 is the first), PCR, type and digests."""

    index: int
    pcr: int
    type: int
    digests: Mapping[str, bytes]  # algorithm name -> digest
    data: bytes

    @property
    def type_name(self) -> str:
        return type_name(self.type)


@dataclass(frozen=True)
class EventLog:
    """A parsed log. ``algorithms``: the banks its events carry digests for."""

    events: tuple[Event, ...]
    algorithms: tuple[str, ...]
    legacy: bool  # SHA-1 only, no Spec ID header
    startup_locality: int = 0

    def replay(self) -> dict[str, dict[int, bytes]]:
        """The PCR values the log replays to, per bank, for every PCR it extends."""
        out: dict[str, dict[int, bytes]] = {name: {} for name in self.algorithms}
        for event in self.events:
            if event.type == EV_NO_ACTION:
                continue
            for name, digest in event.digests.items():
                bank = out[name]
                current = bank.get(event.pcr)
                if current is None:
                    current = self.reset_value(name, event.pcr)
                bank[event.pcr] = hashlib.new(name, current + digest).digest()
        return out

    def reset_value(self, algorithm: str, pcr: int) -> bytes:
        """A PCR's value before the first extend (PCR 0: the startup locality)."""
        size = hashlib.new(algorithm).digest_size
        if pcr == 0 and self.startup_locality:
            return bytes(size - 1) + bytes([self.startup_locality])
        return bytes(size)

    def extended(self, pcr: int) -> list[Event]:
        """The events extended into ``pcr``, in log order."""
        return [e for e in self.events if e.pcr == pcr and e.type != EV_NO_ACTION]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.offset + count > len(self.data):
            raise InputError(f"event log: expected {count} bytes of {what} at offset "
                             f"{self.offset}, found {len(self.data) - self.offset}")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    def done(self) -> bool:
        return self.offset >= len(self.data)


def _event_data(reader: _Reader, index: int) -> bytes:
    size = reader.u32(f"event {index} size")
    if size > _MAX_EVENT_DATA:
        raise InputError(f"event log: event {index}: expected at most {_MAX_EVENT_DATA} "
                         f"bytes of data, found a size of {size}")
    return reader.take(size, f"event {index} data")


def _pcr(reader: _Reader, index: int) -> int:
    pcr = reader.u32(f"event {index} PCR index")
    if pcr > 23:
        raise InputError(f"event log: event {index}: expected a PCR index 0-23, found {pcr}")
    return pcr


def _spec_id(data: bytes) -> dict[int, int]:
    """The Spec ID Event03 header's algorithms: TPM_ALG_ID -> digest size."""
    reader = _Reader(data)
    reader.take(16, "Spec ID signature")
    reader.take(4 + 4, "Spec ID platform class and version")  # class, minor, major, errata, uintn
    count = reader.u32("Spec ID algorithm count")
    if not 0 < count <= 16:
        raise InputError(f"event log: Spec ID header: expected 1-16 algorithms, found {count}")
    sizes = {}
    for _ in range(count):
        algorithm, size = reader.u16("Spec ID algorithm"), reader.u16("Spec ID digest size")
        known = ALGORITHMS.get(algorithm)
        if known is not None and known[1] != size:
            raise InputError(f"event log: Spec ID header: expected {known[0]} digests of "
                             f"{known[1]} bytes, found {size}")
        sizes[algorithm] = size
    vendor = reader.u8("Spec ID vendor info size")
    reader.take(vendor, "Spec ID vendor info")
    return sizes


def parse(data: bytes) -> EventLog:
    """Parse a binary event log (crypto-agile or legacy SHA-1).

    Raises:
        InputError: truncated or malformed, naming the event and offset.
    """
    reader = _Reader(data)
    if reader.done():
        raise InputError("event log: expected at least one event, found 0 bytes")
    first_pcr = _pcr(reader, 0)
    first_type = reader.u32("event 0 type")
    first_digest = reader.take(20, "event 0 SHA-1 digest")
    first_data = _event_data(reader, 0)
    events: list[Event] = []
    if first_type != EV_NO_ACTION or not first_data.startswith(_SPEC_ID):
        # Legacy: every event is a TCG_PCClientPCREvent with a SHA-1 digest.
        events.append(Event(0, first_pcr, first_type, {"sha1": first_digest}, first_data))
        while not reader.done():
            index = len(events)
            pcr, kind = _pcr(reader, index), reader.u32(f"event {index} type")
            digest = reader.take(20, f"event {index} SHA-1 digest")
            events.append(Event(index, pcr, kind, {"sha1": digest}, _event_data(reader, index)))
        return EventLog(events=tuple(events), algorithms=("sha1",), legacy=True)
    sizes = _spec_id(first_data)
    events.append(Event(0, first_pcr, first_type, {}, first_data))
    locality = 0
    while not reader.done():
        index = len(events)
        pcr, kind = _pcr(reader, index), reader.u32(f"event {index} type")
        count = reader.u32(f"event {index} digest count")
        if count > len(sizes):
            raise InputError(f"event log: event {index}: expected at most {len(sizes)} "
                             f"digests (the Spec ID header's algorithms), found {count}")
        digests: dict[str, bytes] = {}
        for _ in range(count):
            algorithm = reader.u16(f"event {index} digest algorithm")
            if algorithm not in sizes:
                raise InputError(f"event log: event {index}: digest algorithm "
                                 f"{algorithm:#06x} is not in the Spec ID header")
            digest = reader.take(sizes[algorithm], f"event {index} digest")
            known = ALGORITHMS.get(algorithm)
            if known is not None:  # an algorithm we cannot replay is skipped, not guessed
                digests[known[0]] = digest
        body = _event_data(reader, index)
        if kind == EV_NO_ACTION and body.startswith(_STARTUP_LOCALITY) and len(body) >= 17:
            locality = body[16]
        events.append(Event(index, pcr, kind, digests, body))
    algorithms = tuple(ALGORITHMS[a][0] for a in sizes if a in ALGORITHMS)
    return EventLog(events=tuple(events), algorithms=algorithms, legacy=False,
                    startup_locality=locality)
