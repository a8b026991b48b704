"""put_many (group commit), on every backend pair: each item on its own terms, one batch."""

import asyncio
import subprocess
import sys
import threading

import pytest

from appliance.components.osis import Osis
from appliance.config import validate
from appliance.osis import codec
from appliance.osis.kv import NEW, Conflict, SqliteKV
from appliance.osis.schema import TYPES, SchemaError, domain
from appliance.osis.views import SqliteViews

MACHINE = TYPES["machine"]


def machine(guid, hostname=None, mac=None):
    nics = [domain.NetworkInterface(mac=mac)] if mac else []
    return domain.Machine(guid=guid, hostname=hostname or guid, interfaces=nics)


def mac(i):
    return f"52:54:00:00:01:{i:02x}"


def by_mac(store, address):
    return [s.obj.guid for s in store.query("machine", [("mac", "=", address)])]


def hostnames(store):
    return {s.obj.guid: s.obj.hostname for s in store.scan("machine")}


def assert_views_match(store):
    """Every view row at the revision the key/value store has, and nothing else."""
    in_store = {s.obj.guid: s.revision for s in store.scan("machine")}
    assert store.views.revisions(MACHINE) == in_store


def test_a_conflicting_item_is_not_written_and_the_others_are(store):
    old = store.put(machine("m1", "one", mac(1)), expect=NEW)
    store.put(machine("m2", "two"), expect=NEW)
    m2 = store.get("machine", "m2")
    store.put(m2.obj, expect=m2.revision)  # m2 moves on: the batch's read of it is stale
    results = store.put_many([
        (machine("m1", "one-renamed", mac(11)), old),   # still at `old`: written
        (machine("m2", "lost-update"), m2.revision),    # stale: Conflict
        (machine("m3", "three", mac(3)), NEW),          # new: written
        (machine("m1", "again"), NEW),                  # exists: Conflict
    ])
    assert [type(r) for r in results] == [int, Conflict, int, Conflict]
    assert results[1].key.endswith(b"machine/m2") and results[1].expected == m2.revision
    assert "expected not to exist" in str(results[3])
    assert hostnames(store) == {"m1": "one-renamed", "m2": "two", "m3": "three"}
    assert store.get("machine", "m1").revision == results[0]
    assert store.get("machine", "m3").revision == results[2]
    assert by_mac(store, mac(11)) == ["m1"] and by_mac(store, mac(1)) == []
    assert store.query("machine", [("hostname", "=", "lost-update")]) == []
    assert_views_match(store)


def test_new_expectations_create_only_what_does_not_exist(store):
    store.put(machine("b", "b-first"), expect=NEW)
    results = store.put_many([(machine(g, f"{g}-batch"), NEW) for g in ("a", "b", "c")])
    assert isinstance(results[1], Conflict) and results[1].actual > 0
    assert hostnames(store) == {"a": "a-batch", "b": "b-first", "c": "c-batch"}
    assert_views_match(store)


def test_an_empty_batch_writes_nothing(store):
    before = store.revision()
    assert store.put_many([]) == []
    assert store.revision() == before


def test_a_batch_of_one_is_a_put(store):
    (revision,) = store.put_many([(machine("m1", mac=mac(1)), NEW)])
    got = store.get("machine", "m1")
    assert got.revision == revision == store.revision() and got.obj == machine("m1", mac=mac(1))
    (conflict,) = store.put_many([(machine("m1"), NEW)])
    assert isinstance(conflict, Conflict)
    with pytest.raises(Conflict):  # put raises what put_many returns
        store.put(machine("m1"), expect=NEW)
    assert by_mac(store, mac(1)) == ["m1"]


def test_items_are_written_in_order(store):
    """Revisions never decrease along a batch, and each is the one its object then has; the
    second write of one object comes later. Only SQLite gives every item its own revision
    (one etcd transaction gives its keys one)."""
    before = store.revision()
    results = store.put_many([(machine(f"m{i}"), NEW) for i in range(5)]
                             + [(machine("m0", "m0-second"), None)])
    assert before < results[0] and results == sorted(results) and results[0] < results[-1]
    assert store.revision() == results[-1]
    assert hostnames(store)["m0"] == "m0-second"
    assert [store.get("machine", f"m{i}").revision for i in range(5)] == results[-1:] + results[1:5]
    if isinstance(store.kv, SqliteKV):
        assert len(set(results)) == len(results)
    changes = store.changes(before, timeout=5)
    assert [(c.guid, c.revision) for c in changes] == [
        (f"m{i}", results[i]) for i in range(5)] + [("m0", results[-1])]


def test_the_same_object_twice_is_checked_against_the_first_write(store):
    """As if put one after the other: the second NEW of one id finds the first."""
    first, second = store.put_many([(machine("m1", "first"), NEW), (machine("m1", "second"), NEW)])
    assert isinstance(first, int) and isinstance(second, Conflict) and second.actual == first
    assert hostnames(store) == {"m1": "first"}
    assert_views_match(store)


def test_views_match_the_store_after_a_large_batch(store):
    store.put_many([(machine(f"m{i:03}", mac=mac(i)), NEW) for i in range(120)])
    updates = [(machine(f"m{i:03}", f"renamed{i}", mac(i + 120)), None) for i in range(0, 120, 3)]
    store.put_many(updates)
    assert_views_match(store)
    assert by_mac(store, mac(123)) == ["m003"] and by_mac(store, mac(3)) == []
    assert by_mac(store, mac(4)) == ["m004"]
    assert len(store.query("machine")) == 120


def test_a_bad_object_fails_the_batch_and_writes_nothing(store):
    before = store.revision()
    with pytest.raises(SchemaError, match="malformed id"):
        store.put_many([(machine("ok"), NEW), (machine("../bad"), NEW)])
    with pytest.raises(SchemaError, match="not a stored object"):
        store.put_many([(machine("ok"), NEW), (domain.Disk(name="vda"), None)])
    assert store.revision() == before and hostnames(store) == {}


def test_concurrent_batches_one_winner_per_object(store):
    store.put_many([(machine(f"m{i}"), NEW) for i in range(3)])
    base = {s.obj.guid: s.revision for s in store.scan("machine")}
    won: dict[str, list[str]] = {}

    def writer(name):
        results = store.put_many([(machine(g, name), rev) for g, rev in base.items()])
        won[name] = [g for g, r in zip(base, results, strict=True) if not isinstance(r, Conflict)]

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 4
    for guid, hostname in hostnames(store).items():
        assert [w for w, guids in won.items() if guid in guids] == [hostname]
    assert_views_match(store)


def test_a_crash_between_the_batch_and_its_views_is_repaired(store):
    """What a crash after the key/value transaction and before the views commit leaves."""
    store.put(machine("m1", mac=mac(1)))
    entry = store.kv.get(store.key_of(MACHINE, "m1"))
    store.kv.put_many([
        (store.key_of(MACHINE, "m1"), codec.encode(machine("m1", mac=mac(21))), entry.revision),
        (store.key_of(MACHINE, "m2"), codec.encode(machine("m2", mac=mac(2))), NEW),
    ])
    assert by_mac(store, mac(2)) == [] and by_mac(store, mac(1)) == ["m1"]
    assert store.repair()["machine"].fixed == 2
    assert by_mac(store, mac(2)) == ["m2"] and by_mac(store, mac(21)) == ["m1"]
    assert_views_match(store)


CRASHING_WRITER = """
import os, sys
from appliance.config import validate
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from appliance.osis.views import SqlViews

store = open_store(validate({}).osis, sys.argv[1])
store.put(domain.Machine(guid="m0", hostname="before"))
SqlViews.upsert = lambda *args: os._exit(17)  # dies once the key/value transaction committed
store.put_many([(domain.Machine(guid="m0", hostname="after"), None),
                (domain.Machine(guid="m1", hostname="new"), 0)])
"""


def test_start_up_repairs_a_batch_cut_off_by_a_crash(tmp_path):
    """A process that dies between the batch's two writes; the osis component repairs the views."""
    done = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], timeout=60)
    assert done.returncode == 17
    views = SqliteViews(tmp_path / "osis" / "views.db")
    assert list(views.revisions(MACHINE)) == ["m0"]  # the views missed the batch
    views.close()

    async def start_and_stop():
        comp = Osis(validate({"node": {"state_dir": str(tmp_path)}, "osis": {"enabled": True}}))
        await comp.start()
        try:
            found = [s.obj.guid for s in comp.store.query("machine", [("hostname", "!=", "before")])]
            assert_views_match(comp.store)
            return found, hostnames(comp.store)
        finally:
            await comp.stop()

    assert asyncio.run(start_and_stop()) == (["m0", "m1"], {"m0": "after", "m1": "new"})


def test_get_many_returns_those_that_exist(store):
    revisions = store.put_many([(machine("m1", "one"), NEW), (machine("m2", "two"), NEW)])
    found = store.get_many("machine", ["m2", "gone", "m1"])
    assert {g: (s.obj.hostname, s.revision) for g, s in found.items()} == {
        "m1": ("one", revisions[0]), "m2": ("two", revisions[1])}
    assert store.get_many("machine", []) == {}
    with pytest.raises(SchemaError, match="malformed id"):
        store.get_many("machine", ["../x"])
