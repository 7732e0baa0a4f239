"""Issue 25 F9: the coordinator's records side file is authenticated.

Sealed rank records live in ``<journal>.records`` and are read back when the
ledger is written. Rewriting the file mid-job changed the signed ledger (rank 1's
node and shards), and ``verify`` and ``verify --rank 1`` both passed. Each record's
digest is now held in memory when it is written and checked when it is read back:
a changed record stops finalization, naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread, RecordFile
from slsa_dist.errors import InputError
from slsa_dist.sign._keys import Signer

pytestmark = pytest.mark.grpc


def test_a_sealed_record_rewritten_on_disk_is_not_signed(tmp_path: Path) -> None:
    signer = Signer.generate()
    journal = tmp_path / "big.journal.sqlite"
    with CoordinatorThread(job_id="big", signer=signer, out_dir=tmp_path / "out",
                           world_size=2, settle=3600, ledger_above=0,
                           journal_path=journal) as server:
        for node in ("n0", "n1"):  # node agents that never end: nothing finalizes early
            agent = Agent(coordinator=server.address, job_id="big", spool_dir=tmp_path / "s",
                          identity=NodeIdentity(node_id=node, hostname=node))
            agent.record_inventory({"host": node})
            assert agent.close(30)
        for rank in range(2):
            agent = Agent(coordinator=server.address, job_id="big", spool_dir=tmp_path / "s",
                          identity=RankIdentity(rank=rank, world_size=2, node_id=f"n{rank}"))
            agent.record_shard(f"train-{rank}.tar",
                               {"sha256": hashlib.sha256(f"s{rank}".encode()).hexdigest()},
                               samples=8)
            agent.complete()
            assert agent.close(30)
        side = journal.with_name(journal.name + ".records")
        data = side.read_bytes()
        assert b'"node":"n1"' in data  # rank 1's sealed record
        side.write_bytes(data.replace(b'"node":"n1"', b'"node":"n0"'))
        with pytest.raises(InputError, match=r"\.records: .*changed outside the coordinator"):
            server.finalize()
        assert not (tmp_path / "out" / "big.intoto.jsonl").exists()


def test_a_record_read_back_must_be_the_bytes_written(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "j.records")
    handle = records.put(b'{"rank":1,"node":"n1"}')
    with (tmp_path / "j.records").open("r+b") as handle_file:
        handle_file.seek(18)
        handle_file.write(b"0")
    with pytest.raises(InputError, match="changed outside the coordinator"):
        records.get(handle)
    records.close()
