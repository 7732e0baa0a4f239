"""Item 12: the journal cannot be rewritten.

Deleting the failed evidence from the SQLite journal and restarting gave a
"complete", signed bundle. Entries are now MAC-chained under a key only the
coordinator holds; replay stops with one line naming what is wrong.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from slsa_dist._pb.v1 import journal_pb2
from slsa_dist.collect import Coordinator, CoordinatorConfig, CoordinatorThread
from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
from slsa_dist.errors import InputError
from slsa_dist.sign._keys import Signer


def _job_with_failed_evidence(tmp_path: Path, signer: Signer) -> Path:
    """A job whose node sent evidence that fails (it answers no nonce of ours)."""
    journal = tmp_path / "j.journal.sqlite"
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           journal_path=journal, settle=3600) as server:
        node = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                     identity=NodeIdentity(node_id="n", hostname="h"))
        node.record_evidence("tpm", b"{}", nonce=b"not ours")
        assert node.close(30)
        rank = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                     identity=RankIdentity(rank=0, world_size=1, node_id="n"))
        rank.complete()
        assert rank.close(30)
    return journal


def _rows(journal: Path) -> list[tuple[int, bytes]]:
    with sqlite3.connect(journal) as db:
        return [(i, bytes(d)) for i, d in db.execute("SELECT id, data FROM entries ORDER BY id")]


def _evidence_row(journal: Path) -> int:
    for row, data in _rows(journal):
        entry = journal_pb2.JournalEntry.FromString(data)
        if entry.WhichOneof("entry") == "batch" and any(
                e.WhichOneof("kind") == "evidence" for e in entry.batch.events):
            return row
    raise AssertionError("no evidence in the journal")


def _restart(tmp_path: Path, signer: Signer, journal: Path) -> Coordinator:
    return Coordinator(CoordinatorConfig(job_id="j", out_dir=tmp_path / "out2", world_size=1,
                                         journal_path=journal), signer=signer)


def test_deleting_the_failed_evidence_from_the_journal_is_refused_on_restart(
        tmp_path: Path) -> None:
    signer = Signer.generate()
    journal = _job_with_failed_evidence(tmp_path, signer)
    with sqlite3.connect(journal) as db:
        db.execute("DELETE FROM entries WHERE id = ?", (_evidence_row(journal),))
    with pytest.raises(InputError, match="expected the MAC chained from the entries before it"):
        _restart(tmp_path, signer, journal)


def test_rewriting_an_entry_in_place_is_refused(tmp_path: Path) -> None:
    signer = Signer.generate()
    journal = _job_with_failed_evidence(tmp_path, signer)
    row = _evidence_row(journal)
    entry = journal_pb2.JournalEntry.FromString(dict(_rows(journal))[row])
    for event in entry.batch.events:
        if event.WhichOneof("kind") == "evidence":
            event.evidence.format = "unavailable"  # "the node had no TPM"
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE entries SET data = ? WHERE id = ?", (entry.SerializeToString(), row))
    with pytest.raises(InputError, match=r"entry \d+: expected the MAC"):
        _restart(tmp_path, signer, journal)


def test_cutting_the_tail_is_refused(tmp_path: Path) -> None:
    signer = Signer.generate()
    journal = _job_with_failed_evidence(tmp_path, signer)
    last = _rows(journal)[-1][0]
    with sqlite3.connect(journal) as db:
        db.execute("DELETE FROM entries WHERE id = ?", (last,))
    with pytest.raises(InputError, match="entries were removed or added outside the coordinator"):
        _restart(tmp_path, signer, journal)


def test_another_key_cannot_take_over_the_journal(tmp_path: Path) -> None:
    journal = _job_with_failed_evidence(tmp_path, Signer.generate())
    with pytest.raises(InputError, match="expected a head authenticated by this coordinator"):
        _restart(tmp_path, Signer.generate(), journal)


def test_the_untouched_journal_replays(tmp_path: Path) -> None:
    signer = Signer.generate()
    journal = _job_with_failed_evidence(tmp_path, signer)
    assert _restart(tmp_path, signer, journal).replayed == len(_rows(journal))
