"""Lease records and where they are kept: the `LeaseStore` interface and two stores.

A store only keeps records; the rules (who may hold which address) are in `table` and
`policy`. `commit` is the one durability point: when it returns, the records survive a
crash, and the server sends an ACK only after the commit that holds its lease. Any
store with `load`/`commit`/`close` can back the server (OSIS plugs in here).

`JournalLeaseStore` is an append-only file: one line per record, each with its own
CRC-32, a batch of records written with one write and one fsync (group commit), and
compaction into a new file that replaces the old one by rename. A kill -9 can leave at
most a torn last line, which fails its CRC and is cut off at the next load; it can never
be a record the server acknowledged, because the ACK waits for the fsync.
"""

import json
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

log = logging.getLogger("netservices.dhcp.leases")

BOUND, FREE, DECLINED = "bound", "free", "declined"


@dataclass(frozen=True, slots=True)
class Lease:
    """What one address is: bound to a MAC until `expires`, free, or declined until `expires`."""

    ip: IPv4Address
    mac: str
    expires: float
    state: str = BOUND
    hostname: str = ""


class LeaseStore(Protocol):
    """Durable lease records, latest per address wins."""

    def load(self) -> list[Lease]:
        """Every address's latest record."""

    def commit(self, changes: Sequence[Lease]) -> None:
        """Make `changes` durable; they survive a crash once this returns."""

    def close(self) -> None:
        """Release the store."""


class MemoryLeaseStore:
    """Records in memory only: for tests and for a server that may forget on restart."""

    def __init__(self, leases: Sequence[Lease] = ()):
        self.records = {lease.ip: lease for lease in leases}
        self.commits = 0

    def load(self) -> list[Lease]:
        return list(self.records.values())

    def commit(self, changes: Sequence[Lease]) -> None:
        self.commits += 1
        for lease in changes:
            self.records[lease.ip] = lease

    def close(self) -> None:
        pass


def _line(lease: Lease) -> bytes:
    body = json.dumps([str(lease.ip), lease.mac, lease.expires, lease.state, lease.hostname],
                      separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _record(line: bytes) -> Lease | None:
    """The lease a journal line holds, or None for a torn or damaged line."""
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    try:
        if not line.endswith(b"\n") or int(crc, 16) != zlib.crc32(body):
            return None
        ip, mac, expires, state, hostname = json.loads(body)
        return Lease(IPv4Address(ip), str(mac), float(expires), str(state), str(hostname))
    except ValueError:
        return None


class JournalLeaseStore:
    """An append-only, fsynced journal file; see the module docstring."""

    def __init__(self, path: str | os.PathLike, *, compact_at: int = 10_000):
        self.path = os.fspath(path)
        self.compact_at = compact_at
        self._records: dict[IPv4Address, Lease] = {}
        self._lines = 0
        self._fd: int | None = None

    def load(self) -> list[Lease]:
        """Read the journal, cut off a torn tail, and open it for appending."""
        good_bytes = offset = 0
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                for line in f:
                    offset += len(line)
                    lease = _record(line)
                    if lease is None:
                        log.warning("leases.damaged_record",
                                    extra={"fields": {"path": self.path, "offset": offset}})
                        continue
                    self._records[lease.ip] = lease
                    good_bytes = offset
                    self._lines += 1
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.ftruncate(self._fd, good_bytes)  # a torn tail of a crash: never acknowledged
        return list(self._records.values())

    def commit(self, changes: Sequence[Lease]) -> None:
        if self._fd is None:
            raise RuntimeError("lease journal is not open: call load() first")
        if not changes:
            return
        data = b"".join(_line(lease) for lease in changes)
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        os.fdatasync(self._fd)
        for lease in changes:
            self._records[lease.ip] = lease
        self._lines += len(changes)
        if self._lines > max(self.compact_at, 4 * len(self._records)):
            self.compact()

    def compact(self) -> None:
        """Rewrite the journal with one line per address; atomic by rename."""
        tmp = f"{self.path}.tmp"
        live = [lease for lease in self._records.values() if lease.state != FREE]
        with open(tmp, "wb") as f:
            f.write(b"".join(_line(lease) for lease in live))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._records = {lease.ip: lease for lease in live}
        self._lines = len(live)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: str | os.PathLike) -> dict[IPv4Address, Lease]:
    """The latest record per address in a journal, read-only (safe while a server runs)."""
    records: dict[IPv4Address, Lease] = {}
    with open(path, "rb") as f:
        for line in f:
            lease = _record(line)
            if lease is not None:
                records[lease.ip] = lease
    return records
