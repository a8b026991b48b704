"""The lease journal: what was committed comes back, torn writes are cut off, compaction is safe."""

import os
from ipaddress import IPv4Address, IPv4Network

import pytest

from netservices.dhcp.leases import JournalLeaseStore, Lease, MemoryLeaseStore
from netservices.dhcp.table import LeaseTable, Pool


def _lease(i: int, **kw) -> Lease:
    return Lease(IPv4Address(f"10.0.0.{i}"), f"52:54:00:00:00:{i:02x}", 2e9, **kw)


def _reopen(path, **kw) -> dict:
    store = JournalLeaseStore(path, **kw)
    try:
        return {lease.ip: lease for lease in store.load()}
    finally:
        store.close()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "dhcp.leases"


def test_committed_leases_come_back(path):
    store = JournalLeaseStore(path)
    assert store.load() == []
    store.commit([_lease(1), _lease(2, hostname="node two")])
    store.commit([_lease(1, state="free")])
    store.close()
    got = _reopen(path)
    assert got[IPv4Address("10.0.0.1")].state == "free"
    assert got[IPv4Address("10.0.0.2")] == _lease(2, hostname="node two")


@pytest.mark.parametrize("tail", [b"1234abcd [\"10.0.0.9\",\"52:5", b"deadbeef {}\n", b"\n", b"x" * 300])
def test_a_torn_or_damaged_tail_is_cut_off_and_the_rest_kept(path, tail):
    store = JournalLeaseStore(path)
    store.load()
    store.commit([_lease(1), _lease(2)])
    store.close()
    with open(path, "ab") as f:
        f.write(tail)
    assert sorted(_reopen(path)) == [IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")]
    store = JournalLeaseStore(path)
    store.load()
    store.commit([_lease(3)])  # appends after the good part, not after the garbage
    store.close()
    assert len(_reopen(path)) == 3
    assert path.read_bytes().count(b"\n") == 3


def test_a_damaged_line_in_the_middle_loses_only_itself(path):
    store = JournalLeaseStore(path)
    store.load()
    store.commit([_lease(1), _lease(2), _lease(3)])
    store.close()
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"10.0.0.2", b"10.0.0.7")  # CRC no longer matches
    path.write_bytes(b"".join(lines))
    assert sorted(str(ip) for ip in _reopen(path)) == ["10.0.0.1", "10.0.0.3"]


def test_compaction_keeps_the_latest_record_per_address(path):
    store = JournalLeaseStore(path, compact_at=50)
    store.load()
    for round_ in range(30):
        store.commit([_lease(i, hostname=f"r{round_}") for i in range(1, 6)])
    store.commit([_lease(5, state="free")])
    store.close()
    lines = path.read_bytes().count(b"\n")
    assert lines < 50, "compacted"
    got = _reopen(path)
    assert {lease.hostname for ip, lease in got.items() if lease.state == "bound"} == {"r29"}
    assert IPv4Address("10.0.0.5") not in got or got[IPv4Address("10.0.0.5")].state == "free"
    assert not os.path.exists(f"{path}.tmp")


def test_table_loaded_from_a_store_keeps_addresses_taken():
    store = MemoryLeaseStore([_lease(100)])
    pool = Pool(IPv4Network("10.0.0.0/24"), IPv4Address("10.0.0.100"), IPv4Address("10.0.0.101"))
    table = LeaseTable([pool], store.load())
    assert table.holder(IPv4Address("10.0.0.100"), now=0) == "52:54:00:00:00:64"
    assert table.lease_of("52:54:00:00:00:64").ip == IPv4Address("10.0.0.100")
