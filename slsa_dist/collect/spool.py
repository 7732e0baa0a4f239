"""The agent's spool: events not yet acknowledged, kept on disk across restarts.

Format: a sequence of records, each a big-endian header (sequence number,
u64; body length, u32) followed by one serialized ``slsa_dist.v1.Event``.
Appends are whole records; a crash can leave only a torn *final* record,
which was never sent and is ignored on reading. Rewrites (after
acknowledgements) go to a temporary file that replaces the spool atomically.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

from slsa_dist._pb.v1 import collector_pb2 as pb

__all__ = ["Spool"]

_HEADER = struct.Struct(">QI")  # sequence number, body length

Record = tuple[int, pb.Event]


def _encode(records: Iterable[Record]) -> bytes:
    chunks = []
    for seq, event in records:
        body = event.SerializeToString()
        chunks.append(_HEADER.pack(seq, len(body)))
        chunks.append(body)
    return b"".join(chunks)


class Spool:
    """One sender's spool file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Record]:
        """Every whole record, in order; [] when there is no spool."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        offset, records = 0, []
        while offset + _HEADER.size <= len(data):
            seq, length = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size: offset + _HEADER.size + length]
            if len(body) < length:
                break  # a torn final record from a crash: it was never sent
            records.append((seq, pb.Event.FromString(body)))
            offset += _HEADER.size + length
        return records

    def append(self, records: Iterable[Record]) -> None:
        """Add records at the end (one write)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(_encode(records))

    def rewrite(self, records: Iterable[Record]) -> None:
        """Keep only ``records`` (atomic rename); no records removes the file."""
        data = _encode(records)
        if not data:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.path)
