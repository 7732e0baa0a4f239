"""The agent's spool: events not yet acknowledged, kept on disk across restarts.

Format: a sequence of records, each a big-endian header (sequence number,
u64; body length, u32) followed by one serialized ``slsa_dist.v1.Event``.
Sequence numbers start at 1; a record numbered 0, first in the file, holds
the sender's registration as JSON (job, coordinator, identity, pid), so
``slsa-dist upload-spool`` can deliver a spool later as the same sender.
Spools written before carry no such record and are read as before.
Appends are whole records; a crash can leave only a torn *final* record,
which was never sent and is ignored on reading. Rewrites (after
acknowledgements) go to a temporary file that replaces the spool atomically.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

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
    """One sender's spool file; ``sender`` (JSON-able) is written as its first record."""

    def __init__(self, path: Path, *, sender: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self._sender = dict(sender) if sender is not None else None

    def _records(self) -> Iterator[tuple[int, bytes]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            seq, length = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size: offset + _HEADER.size + length]
            if len(body) < length:
                return  # a torn final record from a crash: it was never sent
            yield seq, body
            offset += _HEADER.size + length

    def read(self) -> list[Record]:
        """Every whole event record, in order; [] when there is no spool."""
        return [(seq, pb.Event.FromString(body)) for seq, body in self._records() if seq != 0]

    def sender(self) -> dict[str, Any] | None:
        """The registration recorded with the spool (None in spools written before)."""
        for seq, body in self._records():
            return json.loads(body) if seq == 0 else None
        return None

    def _prefix(self) -> bytes:
        if self._sender is None:
            return b""
        body = json.dumps(self._sender, sort_keys=True).encode()
        return _HEADER.pack(0, len(body)) + body

    def append(self, records: Iterable[Record]) -> None:
        """Add records at the end (one write); a new spool starts with the sender."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            prefix = self._prefix() if handle.tell() == 0 else b""
            handle.write(prefix + _encode(records))

    def rewrite(self, records: Iterable[Record]) -> None:
        """Keep only ``records`` (atomic rename); no records removes the file."""
        data = _encode(records)
        if not data:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(self._prefix() + data)
        tmp.replace(self.path)
