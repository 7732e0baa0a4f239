"""The coordinator's durable journal: SQLite in WAL mode, fsync on commit.

Each row is one serialized ``JournalEntry`` in acceptance order. Writes are
grouped: concurrent RPCs wait on one transaction (group commit), so an
acknowledgement always follows a completed fsync without paying one fsync
per batch. A write failure (disk full, I/O error) is sticky: the coordinator
stops acknowledging and must be restarted from what is durable.

Each row also carries a MAC chained over every entry before it
(HMAC-SHA256 under a key only the coordinator holds, derived from its signing
key), and the meta table an authenticated head (entry count, last MAC).
Replay checks both: an entry rewritten, removed, reordered or appended
outside the coordinator, or a truncated tail, stops the coordinator with one
line naming the entry, instead of yielding a "complete" provenance of an
edited history. (A whole journal rolled back to an earlier copy is
consistent; agents then report the acknowledged events it lost as
sequence gaps.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import hashlib
import hmac
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

from slsa_dist.errors import InputError

__all__ = ["GroupCommitter", "Journal", "JournalFailed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, data BLOB NOT NULL,
                                    mac BLOB NOT NULL);
"""
# 2: every entry MAC-chained, an authenticated head in meta.
FORMAT_VERSION = "2"


class JournalFailed(Exception):  # noqa: N818 -- a state, raised to every waiter
    """A journal write failed; nothing after the last good commit is durable."""


class Journal:
    """Append-only log of accepted messages for one job."""

    def __init__(self, path: str | os.PathLike[str], *, job_id: str, key: bytes,
                 max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self._key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One coordinator per journal: a second one would interleave two histories.
        self._lock = (self.path.parent / f"{self.path.name}.lock").open("a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise InputError(f"journal {self.path}: expected no other coordinator using it, "
                             "found one holding its lock") from None
        # check_same_thread=False: opened on the event loop's thread, written on the
        # committer's single worker thread; never used by two threads at once.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        if max_bytes is not None:
            # A quota on the journal: past it SQLite fails with SQLITE_FULL, exactly as
            # on a full disk, and the coordinator stops acknowledging.
            page = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page)}")
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not stored:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("job_id", job_id), ("format", FORMAT_VERSION),
                                  ("run_id", str(uuid.uuid4()))])
            self._db.execute("COMMIT")
            stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        elif stored.get("job_id") != job_id:
            raise InputError(f"journal {self.path}: expected job {job_id!r}, "
                             f"found job {stored.get('job_id')!r}")
        elif stored.get("format") != FORMAT_VERSION:
            raise InputError(f"journal {self.path}: expected format {FORMAT_VERSION}, "
                             f"found {stored.get('format')!r}")
        if "run_id" not in stored:  # a journal from before run ids: this run gets one now
            stored["run_id"] = str(uuid.uuid4())
            self._db.execute("INSERT INTO meta VALUES ('run_id', ?)", (stored["run_id"],))
        # This run's UUID: kept across coordinator restarts, new for every new journal.
        self.run_id = stored["run_id"]
        self._count, self._last = 0, self._seed()
        head = stored.get("head")
        if head is not None:
            count, last, tag = head.split(":")
            if not hmac.compare_digest(bytes.fromhex(tag), self._head_tag(int(count),
                                                                          bytes.fromhex(last))):
                raise InputError(f"journal {self.path}: expected a head authenticated by this "
                                 "coordinator's key, found one that is not (a different key, "
                                 "or the journal was edited)")
            self._head = (int(count), bytes.fromhex(last))
        else:
            self._head = (0, self._last)

    def _seed(self) -> bytes:
        return hmac.new(self._key, f"slsa-dist journal\0{self.run_id}".encode(),
                        hashlib.sha256).digest()

    def _mac(self, previous: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, previous + hashlib.sha256(data).digest(),
                        hashlib.sha256).digest()

    def _head_tag(self, count: int, last: bytes) -> bytes:
        return hmac.new(self._key, f"head\0{count}\0".encode() + last, hashlib.sha256).digest()

    def entries(self) -> Iterator[bytes]:
        """Every entry, oldest first, each checked against the MAC chain.

        Raises:
            InputError: an entry or the head does not match: the journal was changed
                outside the coordinator (or belongs to another key).
        """
        count, last = 0, self._seed()
        for data, mac in self._db.execute("SELECT data, mac FROM entries ORDER BY id"):
            expected = self._mac(last, bytes(data))
            if not hmac.compare_digest(expected, bytes(mac)):
                raise InputError(f"journal {self.path}: entry {count + 1}: expected the MAC "
                                 "chained from the entries before it, found another (the "
                                 "journal was changed outside the coordinator)")
            count, last = count + 1, expected
            yield bytes(data)
        if (count, last) != self._head:
            raise InputError(f"journal {self.path}: expected {self._head[0]} entries as its "
                             f"authenticated head records, found {count} (entries were removed "
                             "or added outside the coordinator)")
        self._count, self._last = count, last

    def append(self, entries: list[bytes]) -> None:
        """Write ``entries`` in one durable transaction, chained to the ones before."""
        count, last, rows = self._count, self._last, []
        for data in entries:
            last = self._mac(last, data)
            rows.append((data, last))
            count += 1
        head = f"{count}:{last.hex()}:{self._head_tag(count, last).hex()}"
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT INTO entries (data, mac) VALUES (?, ?)", rows)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))
            self._db.execute("COMMIT")
            self._count, self._last = count, last
            self._head = (count, last)
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
        self._lock.close()  # releases the lock


class GroupCommitter:
    """Batches journal writes from concurrent RPCs into few transactions."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="journal")
        self.failure: BaseException | None = None
        self.commits = 0

    async def write(self, entry: bytes | list[bytes] | None) -> None:
        """Return once ``entry`` (one, or a list committed together) and everything
        queued before it is durable.

        ``None`` queues nothing and only waits: a barrier for replies that
        acknowledge events accepted by another, still committing, RPC.

        Raises:
            JournalFailed: the journal cannot be written any more.
        """
        if self.failure is not None:
            raise JournalFailed(str(self.failure))
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if isinstance(entry, list):
            self._pending.extend(entry)
        elif entry is not None:
            self._pending.append(entry)
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        await waiter

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiters:
            entries, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                if entries:
                    await loop.run_in_executor(self._executor, self._journal.append, entries)
                    self.commits += 1
            except Exception as exc:
                self.failure = exc
                for waiter in waiters + self._waiters:
                    if not waiter.done():
                        waiter.set_exception(JournalFailed(f"journal write failed: {exc}"))
                self._waiters = []
                return
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._journal.close()
