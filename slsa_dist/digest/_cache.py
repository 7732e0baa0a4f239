"""A local cache of file digests, so unchanged dataset shards are not re-read.

Threat model (also in ``docs/digest-cache.md``): an entry is keyed by
(device, inode, size, mtime_ns, ctime_ns, algorithm, byte range). Any change
of those fields misses the cache. ``ctime`` cannot be set from user space, so
an attacker who rewrites a file and restores its mtime still changes ctime.
Someone with root on the machine (who can change the clock or edit the
database) can poison the cache; that actor can already rewrite the training
data, so the cache adds no new power. The database records the machine it
was written on and is ignored anywhere else (a copied home directory or a
shared file system must not carry digests across machines).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from pathlib import Path

__all__ = ["DigestCache", "default_cache_path", "machine_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS digests (
    dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,
    algorithm TEXT, start INTEGER, "end" INTEGER, digest TEXT NOT NULL,
    PRIMARY KEY (dev, ino, algorithm, start, "end")
);
"""


def machine_id() -> str:
    """A stable identity of this machine (systemd machine-id, else hostname)."""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = Path(candidate).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return "host:" + socket.gethostname()


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "slsa-dist" / "digests.sqlite"


class DigestCache:
    """SQLite-backed digest cache; thread-safe; trusted only where it was written."""

    def __init__(self, *, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        here = machine_id()
        row = self._db.execute("SELECT value FROM meta WHERE key='machine'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('machine', ?)", (here,))
        elif row[0] != here:
            # Written elsewhere: drop everything rather than trust it.
            self._db.execute("DELETE FROM digests")
            self._db.execute("UPDATE meta SET value=? WHERE key='machine'", (here,))
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, st: os.stat_result, algorithm: str, start: int, end: int) -> str | None:
        with self._lock:
            row = self._db.execute(
                'SELECT digest, size, mtime_ns, ctime_ns FROM digests WHERE dev=? AND ino=? '
                'AND algorithm=? AND start=? AND "end"=?',
                (st.st_dev, st.st_ino, algorithm, start, end),
            ).fetchone()
            if row is None or tuple(row[1:]) != (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                self.misses += 1
                return None
            self.hits += 1
            return str(row[0])

    def put(self, st: os.stat_result, algorithm: str, start: int, end: int, digest: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                 algorithm, start, end, digest),
            )

    def commit(self) -> None:
        with self._lock:
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.commit()
            self._db.close()
