"""The object store contract, on every backend pair (see conftest.py)."""

import threading

import pytest

from appliance.osis.kv import NEW, Conflict
from appliance.osis.schema import TYPES, SchemaError, domain
from appliance.osis.store import CorruptObject, NotFound

MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"


def machine(guid="m1", hostname="node1", macs=(MAC1,), state=domain.MachineState.NEW, **kw):
    nics = [domain.NetworkInterface(mac=m) for m in macs]
    return domain.Machine(guid=guid, hostname=hostname, interfaces=nics, state=state, **kw)


def test_put_then_get_returns_the_same_object(store):
    obj = machine(cpus=8, memory_mb=16384, tags={"rack": "r1"},
                  disks=[domain.Disk(name="vda", size_bytes=10 << 30, serial="DISK-1")])
    revision = store.put(obj, expect=NEW)
    got = store.get("machine", "m1")
    assert got.obj == obj and got.revision == revision > 0


def test_create_twice_conflicts(store):
    store.put(machine(), expect=NEW)
    with pytest.raises(Conflict, match="expected not to exist, it is at revision"):
        store.put(machine(hostname="other"), expect=NEW)
    assert store.get("machine", "m1").obj.hostname == "node1"


def test_update_based_on_a_stale_read_conflicts_and_changes_nothing(store):
    store.put(machine(), expect=NEW)
    first, second = store.get("machine", "m1"), store.get("machine", "m1")
    first.obj.hostname = "renamed"
    store.put(first.obj, expect=first.revision)
    second.obj.hostname = "lost-update"
    with pytest.raises(Conflict, match=f"expected revision {second.revision}, it is at revision"):
        store.put(second.obj, expect=second.revision)
    assert store.get("machine", "m1").obj.hostname == "renamed"
    assert [s.obj.guid for s in store.query("machine", [("hostname", "=", "renamed")])] == ["m1"]
    assert store.query("machine", [("hostname", "=", "lost-update")]) == []


def test_concurrent_updates_exactly_one_wins(store):
    store.put(machine(), expect=NEW)
    base = store.get("machine", "m1")
    outcomes = []

    def update(name):
        obj = machine(hostname=name)
        try:
            store.put(obj, expect=base.revision)
            outcomes.append(name)
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=update, args=(f"n{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    winners = [o for o in outcomes if o != "conflict"]
    assert len(outcomes) == 4 and len(winners) == 1
    assert store.get("machine", "m1").obj.hostname == winners[0]


def test_delete(store):
    rev = store.put(machine(), expect=NEW)
    with pytest.raises(Conflict):
        store.delete("machine", "m1", expect=rev + 100)
    store.delete("machine", "m1", expect=rev)
    with pytest.raises(NotFound, match="no machine m1"):
        store.get("machine", "m1")
    with pytest.raises(NotFound):
        store.delete("machine", "m1")
    assert store.query("machine", [("mac", "=", MAC1)]) == []


def test_scan_lists_a_type_in_id_order(store):
    for guid in ("b", "a", "c"):
        store.put(machine(guid=guid, hostname=guid))
    store.put(domain.Lease(guid="10.0.0.5", ip="10.0.0.5", mac=MAC1))
    assert [s.obj.guid for s in store.scan("machine")] == ["a", "b", "c"]
    assert [s.obj.ip for s in store.scan("lease")] == ["10.0.0.5"]


QUERIES = {
    "by a multi-valued column": ([("mac", "=", MAC2)], None, False, None, ["m2"]),
    "by enum name": ([("state", "=", "READY")], None, False, None, ["m2", "m3"]),
    "two filters": ([("state", "=", "READY"), ("hostname", "!=", "n3")], None, False, None, ["m2"]),
    "range on a number": ([("updated", ">=", "20")], "updated", True, None, ["m3", "m2"]),
    "order and limit": ([], "hostname", True, 2, ["m3", "m2"]),
    "not having a mac": ([("mac", "!=", MAC1)], None, False, None, ["m2", "m3"]),
    "nothing matches": ([("hostname", "=", "nope")], None, False, None, []),
}


@pytest.mark.parametrize("where,order,desc,limit,expected", QUERIES.values(), ids=QUERIES.keys())
def test_query(store, where, order, desc, limit, expected):
    store.put(machine("m1", "n1", (MAC1,), updated=10.0))
    store.put(machine("m2", "n2", (MAC2, "52:54:00:00:00:09"), domain.MachineState.READY, updated=20.0))
    store.put(machine("m3", "n3", (), domain.MachineState.READY, updated=30.0))
    found = store.query("machine", where, order_by=order, descending=desc, limit=limit)
    assert [s.obj.guid for s in found] == expected


BAD_CALLS = {
    "unknown type": (lambda s: s.get("gadget", "x"), "unknown type 'gadget'"),
    "malformed id": (lambda s: s.get("machine", "../etc/passwd"), "malformed id"),
    "empty id": (lambda s: s.put(machine(guid="")), "malformed id"),
    "unknown column": (lambda s: s.query("machine", [("colour", "=", "red")]), "machine has no column 'colour'"),
    "bad operator": (lambda s: s.query("machine", [("hostname", "~", "x")]), "unknown operator"),
    "value of the wrong type": (lambda s: s.query("machine", [("updated", ">", "soon")]), "updated: 'soon' is not real"),
    "order by a list": (lambda s: s.query("machine", order_by="mac"), "cannot order by multi-valued"),
    "not a stored object": (lambda s: s.put(domain.Disk(name="vda")), "not a stored object: Disk"),
}


@pytest.mark.parametrize("call,message", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_calls_are_clear_errors_and_write_nothing(store, call, message):
    before = store.revision()
    with pytest.raises(SchemaError, match=message):
        call(store)
    assert store.revision() == before


def test_a_corrupt_value_is_reported_never_returned(store):
    store.put(machine("good"))
    store.put(machine("bad", hostname="bad"))
    key = store.key_of(TYPES["machine"], "bad")
    entry = store.kv.get(key)
    store.kv.put(key, entry.value[:-3], expect=entry.revision)  # a torn write
    with pytest.raises(CorruptObject, match="osis/machine/bad: corrupt stored value"):
        store.get("machine", "bad")
    listed = store.scan("machine")
    assert [s.obj.guid for s in listed] == ["good"] and len(listed.corrupt) == 1
    assert [s.obj.guid for s in store.query("machine")] == ["good"]


def test_changes_follow_puts_and_deletes(store):
    start = store.revision()
    store.put(machine("m1"))
    store.put(domain.Event(guid="e1", kind="machine.enrolled", machine="m1"))
    store.delete("machine", "m1")
    changes = []
    while len(changes) < 3:
        batch = store.changes(changes[-1].revision if changes else start, timeout=5)
        assert batch, "no change seen within 5 s"
        changes += batch
    assert [(c.type, c.guid, c.deleted) for c in changes] == [
        ("machine", "m1", False), ("event", "e1", False), ("machine", "m1", True)]
    assert store.changes(changes[-1].revision, timeout=0.2) == []


def test_changes_wait_for_a_write(store):
    after = store.revision()
    timer = threading.Timer(0.3, lambda: store.put(machine("late")))
    timer.start()
    try:
        batch = store.changes(after, timeout=5)
    finally:
        timer.join()
    assert [c.guid for c in batch] == ["late"]


def test_sqlite_writes_wake_followers_in_the_same_process(tmp_path):
    """The DNS and accounts followers share the appliance's store: a write through it
    wakes them, without waiting for the poll that catches other processes' writes."""
    from appliance.osis.kv import SqliteKV
    kv = SqliteKV(tmp_path / "kv.db", poll_interval=60)
    after, seen = kv.revision(), []
    follower = threading.Thread(target=lambda: seen.extend(kv.changes(b"machine/", after, timeout=120)))
    follower.start()
    try:
        threading.Event().wait(0.2)  # the follower is waiting by now (if not, it sees the write at once)
        kv.put(b"machine/m1", b"x")
        follower.join(10)
        assert not follower.is_alive(), "the follower still waits for its 60 s poll"
        assert [c.key for c in seen] == [b"machine/m1"]
    finally:
        kv.put(b"machine/m2", b"y")  # ends the wait if the assertion above failed
        follower.join(120)
        kv.close()
