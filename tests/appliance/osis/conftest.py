"""The same store contract runs on every backend pair: SQLite or etcd, SQLite or PostgreSQL."""

import pytest

from appliance.osis.kv import SqliteKV
from appliance.osis.kv_etcd import EtcdKV
from appliance.osis.store import ObjectStore
from appliance.osis.views import PostgresViews, SqliteViews

BACKENDS = ["sqlite+sqlite", "sqlite+postgresql", "etcd+sqlite", "etcd+postgresql"]


def make_kv(kind, request, tmp_path, name="objects.db"):
    if kind == "sqlite":
        return SqliteKV(tmp_path / name), b"osis/"
    etcd = request.getfixturevalue("etcd")
    return EtcdKV([etcd.endpoint]), request.getfixturevalue("etcd_prefix") + b"osis/"


def make_views(kind, request, tmp_path, name="views.db"):
    if kind == "sqlite":
        return SqliteViews(tmp_path / name)
    return PostgresViews(request.getfixturevalue("pg_db"))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    kv_kind, views_kind = request.param.split("+")
    kv, prefix = make_kv(kv_kind, request, tmp_path)
    views = make_views(views_kind, request, tmp_path)
    store = ObjectStore(kv, views, prefix=prefix)
    yield store
    store.close()
