"""A backend that is down gives a clear error, and nothing is half-written."""

import pytest

from appliance.osis.kv import SqliteKV, Unavailable
from appliance.osis.kv_etcd import EtcdKV
from appliance.osis.schema import TYPES, domain
from appliance.osis.store import ObjectStore
from appliance.osis.views import PostgresViews, SqliteViews
from tests.fixtures.servers import EtcdServer, PostgresServer, free_port


def test_etcd_down(tmp_path):
    with EtcdServer() as etcd:
        store = ObjectStore(EtcdKV([etcd.endpoint], timeout=2), SqliteViews(tmp_path / "v.db"))
        store.put(domain.Machine(guid="m1"))
    with pytest.raises(Unavailable, match=f"etcd unreachable: {etcd.endpoint}"):
        store.put(domain.Machine(guid="m2"))
    with pytest.raises(Unavailable):
        store.get("machine", "m1")
    assert list(store.views.revisions(TYPES["machine"])) == ["m1"]


def test_etcd_fails_over_to_the_next_endpoint(etcd, etcd_prefix, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    store = ObjectStore(EtcdKV([dead, etcd.endpoint], timeout=2), SqliteViews(tmp_path / "v.db"),
                        prefix=etcd_prefix)
    store.put(domain.Machine(guid="m1", hostname="h"))
    assert store.get("machine", "m1").obj.hostname == "h"


def test_postgresql_down_writes_nothing(tmp_path):
    with PostgresServer() as pg:
        kv = SqliteKV(tmp_path / "o.db")
        store = ObjectStore(kv, PostgresViews(pg.dsn, timeout=2))
        store.put(domain.Machine(guid="m1"))
    before = kv.revision()
    with pytest.raises(Unavailable, match="PostgreSQL"):
        store.put(domain.Machine(guid="m2"))
    assert kv.revision() == before and kv.get(b"osis/machine/m2") is None
    with pytest.raises(Unavailable):
        store.query("machine")


def test_postgresql_unreachable_at_open():
    with pytest.raises(Unavailable, match="PostgreSQL unreachable"):
        PostgresViews(f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres", timeout=1)


def test_etcd_without_endpoints():
    with pytest.raises(Unavailable, match="no etcd endpoints"):
        EtcdKV([])
