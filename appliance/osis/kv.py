"""The key/value store under OSIS: one interface, SQLite (embedded) and etcd (shared).

Every write gets a store-wide revision number, like etcd's. A write may name the
revision it expects the key to have (`expect`): NEW (0) for "must not exist", a
revision for "must be unchanged since I read it", None for "whatever is there". A
mismatch raises Conflict and writes nothing.

`put_many` writes a batch of (key, value, expect), each on its own terms, as if put one
after the other in that order: a mismatched item gets its Conflict in the result list and
is not written, the others are. An item's result is the revision its key now has; along
the batch they never decrease, but they need not differ. SQLite does the whole batch in
one transaction (one fsync), each item with its own increasing revision. etcd writes it
as one transaction whose items all share its one revision (a batch of more than 128
items, or one naming a key twice, as several transactions in order: see kv_etcd.py); if
some items conflict, the others go as a second transaction. A crash leaves each
transaction all or nothing.
"""

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NEW = 0
KEEP_CHANGES = 10_000  # changes kept for watchers; older ones are compacted away


class StoreError(Exception):
    """Base of the errors a key/value store raises."""


class Conflict(StoreError):
    """The key's revision is not the one the write expected."""

    def __init__(self, key: bytes, expected: int, actual: int):
        state = "does not exist" if actual == NEW else f"is at revision {actual}"
        want = "not to exist" if expected == NEW else f"revision {expected}"
        super().__init__(f"conflict on {key.decode(errors='replace')}: expected {want}, it {state}")
        self.key, self.expected, self.actual = key, expected, actual


class Unavailable(StoreError):
    """The backend cannot be reached or failed; nothing was written."""


class Refused(StoreError):
    """The backend answered and turned the request down (etcd: a value over its request
    size limit); nothing was written, and asking another endpoint would not help."""


class Compacted(StoreError):
    """The changes asked for are older than the store keeps: resynchronise from a scan."""


@dataclass(frozen=True)
class Entry:
    key: bytes
    value: bytes
    revision: int


@dataclass(frozen=True)
class Change:
    key: bytes
    revision: int
    deleted: bool


class KV(Protocol):
    def get(self, key: bytes) -> Entry | None: ...
    def put(self, key: bytes, value: bytes, expect: int | None = None) -> int: ...
    def put_many(self, items: list[tuple[bytes, bytes, int | None]]) -> list[int | Conflict]: ...
    def delete(self, key: bytes, expect: int | None = None) -> int | None: ...
    def scan(self, prefix: bytes) -> Iterator[Entry]: ...
    def revision(self) -> int: ...
    def changes(self, prefix: bytes, after: int, timeout: float) -> list[Change]: ...
    def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else b"\0"


SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (key BLOB PRIMARY KEY, value BLOB NOT NULL,
                                    revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (revision INTEGER PRIMARY KEY, key BLOB NOT NULL,
                                    deleted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""


class SqliteKV:
    """The embedded store: one SQLite file in WAL mode, fsynced at every commit."""

    def __init__(self, path: str | Path, poll_interval: float = 0.05):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self.poll_interval = str(path), poll_interval
        self._lock = _Guarded(self.path)
        # Writes through this object wake its `changes` callers at once (other processes'
        # writes are seen at the next poll): in-process followers lag by no poll interval.
        self._written, self._generation = threading.Condition(), 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open {self.path}: {exc}") from None

    def get(self, key: bytes) -> Entry | None:
        with self._lock:
            row = self._one("SELECT value, revision FROM objects WHERE key = ?", key)
        return Entry(key, row[0], row[1]) if row else None

    def put(self, key: bytes, value: bytes, expect: int | None = None) -> int:
        (result,) = self.put_many([(key, value, expect)])
        if isinstance(result, Conflict):
            raise result
        return result

    def put_many(self, items: list[tuple[bytes, bytes, int | None]]) -> list[int | Conflict]:
        """Each (key, value, expect) checked and written on its own terms, in one transaction."""
        if not items:
            return []
        results: list[int | Conflict] = []
        with self._lock, self._write():
            for key, value, expect in items:
                try:
                    self._check(key, expect)
                except Conflict as exc:
                    results.append(exc)
                    continue
                rev = self._bump()
                self._db.execute("INSERT INTO objects VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                                 " SET value = excluded.value, revision = excluded.revision",
                                 (key, value, rev))
                self._db.execute("INSERT INTO changes VALUES (?, ?, 0)", (rev, key))
                results.append(rev)
        self._wake()
        return results

    def delete(self, key: bytes, expect: int | None = None) -> int | None:
        with self._lock, self._write():
            if self._check(key, expect) == NEW:
                return None
            rev = self._bump()
            self._db.execute("DELETE FROM objects WHERE key = ?", (key,))
            self._db.execute("INSERT INTO changes VALUES (?, ?, 1)", (rev, key))
        self._wake()
        return rev

    def scan(self, prefix: bytes) -> Iterator[Entry]:
        with self._lock:
            rows = self._db.execute("SELECT key, value, revision FROM objects WHERE key >= ?"
                                    " AND key < ? ORDER BY key", (prefix, prefix_end(prefix)))
            entries = [Entry(*row) for row in rows]
        return iter(entries)

    def revision(self) -> int:
        with self._lock:
            return self._one("SELECT value FROM meta WHERE name = 'revision'")[0]

    def changes(self, prefix: bytes, after: int, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            generation = self._generation
            with self._lock:
                if after < self._one("SELECT value FROM meta WHERE name = 'compacted'")[0]:
                    raise Compacted(f"changes after {after} are compacted")
                rows = self._db.execute(
                    "SELECT key, revision, deleted FROM changes WHERE revision > ? AND key >= ?"
                    " AND key < ? ORDER BY revision LIMIT 1000", (after, prefix, prefix_end(prefix)))
                found = [Change(k, r, bool(d)) for k, r, d in rows]
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            with self._written:
                if self._generation == generation:  # nothing written since the query
                    self._written.wait(min(self.poll_interval, left))

    def _wake(self) -> None:
        with self._written:
            self._generation += 1
            self._written.notify_all()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, *args):
        return self._db.execute(sql, args).fetchone()

    def _check(self, key: bytes, expect: int | None) -> int:
        row = self._one("SELECT revision FROM objects WHERE key = ?", key)
        actual = row[0] if row else NEW
        if expect is not None and expect != actual:
            raise Conflict(key, expect, actual)
        return actual

    def _bump(self) -> int:
        rev = self._one("UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value")[0]
        if rev % 1000 == 0 and rev > KEEP_CHANGES:
            self._db.execute("DELETE FROM changes WHERE revision <= ?", (rev - KEEP_CHANGES,))
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (rev - KEEP_CHANGES,))
        return rev

    def _write(self):
        return _Transaction(self._db)


class _Guarded:
    """The connection's lock; SQLite errors under it become Unavailable (nothing written)."""

    def __init__(self, path: str):
        self.path, self.lock = path, threading.Lock()

    def __enter__(self):
        self.lock.acquire()

    def __exit__(self, exc_type, exc, tb):
        self.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise Unavailable(f"{self.path}: {exc}") from exc


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception: all or nothing."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
