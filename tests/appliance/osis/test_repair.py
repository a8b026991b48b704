"""Views fall behind (a crash between the two writes, another appliance's writes): they are repaired."""

import asyncio

import pytest

from appliance.components.osis import Osis
from appliance.config import validate
from appliance.osis import codec
from appliance.osis.kv import SqliteKV
from appliance.osis.kv_etcd import EtcdKV
from appliance.osis.schema import TYPES, domain
from appliance.osis.store import ObjectStore
from appliance.osis.views import SqliteViews

from .conftest import make_views

MACHINE = TYPES["machine"]


def nic_machine(guid, mac, hostname=None):
    return domain.Machine(guid=guid, hostname=hostname or guid, interfaces=[domain.NetworkInterface(mac=mac)])


def by_mac(store, mac):
    return [s.obj.guid for s in store.query("machine", [("mac", "=", mac)])]


def test_crash_between_the_two_writes_is_repaired(store):
    store.put(nic_machine("m1", "52:54:00:00:00:01"))
    # What a crash after the key/value write and before the view write leaves behind:
    store.kv.put(store.key_of(MACHINE, "m2"), codec.encode(nic_machine("m2", "52:54:00:00:00:02")))
    entry = store.kv.get(store.key_of(MACHINE, "m1"))
    store.kv.put(entry.key, codec.encode(nic_machine("m1", "52:54:00:00:00:03")), expect=entry.revision)
    assert by_mac(store, "52:54:00:00:00:02") == [] and by_mac(store, "52:54:00:00:00:01") == ["m1"]
    assert store.repair()["machine"].fixed == 2
    assert by_mac(store, "52:54:00:00:00:02") == ["m2"]
    assert by_mac(store, "52:54:00:00:00:03") == ["m1"] and by_mac(store, "52:54:00:00:00:01") == []
    assert store.repair()["machine"].fixed == 0  # nothing left to do


def test_a_view_row_of_a_deleted_object_is_removed(store):
    store.put(nic_machine("m1", "aa"))
    store.kv.delete(store.key_of(MACHINE, "m1"))  # deleted, view not told
    assert store.repair()["machine"].fixed == 1
    assert store.views.revisions(MACHINE) == {}


def test_reindex_rebuilds_views_from_the_store(store):
    for i in range(5):
        store.put(nic_machine(f"m{i}", f"52:54:00:00:00:1{i}"))
    store.put(domain.Event(guid="e1", kind="boot"))
    with store.views.session() as cur:
        cur.execute("DROP TABLE v_machine__mac")
        cur.execute("DROP TABLE v_machine")
    store.views.ensure(TYPES.values())
    counts = store.reindex()
    assert counts["machine"].fixed == 5 and counts["event"].fixed == 1
    assert by_mac(store, "52:54:00:00:00:13") == ["m3"]


def test_start_up_repairs_what_a_crash_left(tmp_path):
    """The osis component runs repair() when the appliance starts."""
    cfg = validate({"node": {"state_dir": str(tmp_path)}, "osis": {"enabled": True}})
    base = tmp_path / "osis"
    kv = SqliteKV(base / "objects.db")
    kv.put(b"osis/machine/m9", codec.encode(nic_machine("m9", "52:54:00:00:00:99")))
    kv.close()

    async def start_and_stop():
        comp = Osis(cfg)
        await comp.start()
        found = by_mac(comp.store, "52:54:00:00:00:99")
        await comp.stop()
        return found

    assert asyncio.run(start_and_stop()) == ["m9"]


@pytest.mark.parametrize("views_kind", ["sqlite", "postgresql"])
def test_two_appliances_on_one_etcd_see_each_others_writes(request, tmp_path, etcd, etcd_prefix, views_kind):
    """Each appliance keeps its own views; the osis component applies the other's changes."""
    prefix = etcd_prefix + b"osis/"
    mine = ObjectStore(EtcdKV([etcd.endpoint]), SqliteViews(tmp_path / "mine.db"), prefix=prefix)
    theirs = ObjectStore(EtcdKV([etcd.endpoint]), make_views(views_kind, request, tmp_path), prefix=prefix)
    try:
        after = mine.revision()
        theirs.put(nic_machine("far", "52:54:00:00:00:77"))
        assert by_mac(mine, "52:54:00:00:00:77") == []
        mine.apply(mine.changes(after, timeout=5))
        assert by_mac(mine, "52:54:00:00:00:77") == ["far"]
        after = mine.revision()
        theirs.delete("machine", "far")
        mine.apply(mine.changes(after, timeout=5))
        assert by_mac(mine, "52:54:00:00:00:77") == []
    finally:
        mine.close()
        theirs.close()


def test_the_osis_component_follows_etcd_writes_of_another_appliance(tmp_path, etcd):
    cfg = validate({"node": {"state_dir": str(tmp_path)},
                    "osis": {"enabled": True, "kv": "etcd", "etcd_endpoints": [etcd.endpoint]}})
    other = ObjectStore(EtcdKV([etcd.endpoint]), SqliteViews(tmp_path / "other.db"))

    async def scenario():
        comp = Osis(cfg, poll=0.2)
        await comp.start()
        serving = asyncio.create_task(comp.serve())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(other.put, nic_machine("remote", "52:54:00:00:00:55"))
        for _ in range(50):
            if await asyncio.to_thread(by_mac, comp.store, "52:54:00:00:00:55"):
                break
            await asyncio.sleep(0.1)
        found = await asyncio.to_thread(by_mac, comp.store, "52:54:00:00:00:55")
        await comp.stop()
        await asyncio.wait_for(serving, 5)
        return found

    try:
        assert asyncio.run(scenario()) == ["remote"]
    finally:
        other.delete("machine", "remote")
        other.close()
