"""The coordinator writes a batch's journal entry by appending its bytes: it must be the
entry protobuf itself would write, or replay would read another history."""

from __future__ import annotations

import datetime as dt

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import journal_pb2
from slsa_dist.collect._coordinator import Coordinator


@pytest.mark.parametrize("events", [0, 1, 300])
def test_a_batch_entry_is_byte_for_byte_protobufs(events: int) -> None:
    now = dt.datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
    batch = pb.ReportRequest(job_id="j", sender="rank/1/0/0", first_sequence=3, events=[
        pb.Event(shard=pb.ShardConsumed(name=f"s{i}", digest={"sha256": "ab" * 32}))
        for i in range(events)])
    written = Coordinator._entry(now, batch=batch)
    expected = journal_pb2.JournalEntry(time_unix_nanos=int(now.timestamp() * 1e9),
                                        batch=batch).SerializeToString()
    assert written == expected
    assert journal_pb2.JournalEntry.FromString(written).batch == batch
