"""OSIS: puts, gets and view queries per second on every backend pair.

`put_many x100` is the same creates in batches of BATCH (group commit: one key/value
transaction and one views session a batch), per object; its peer is `put (create)`.

Throwaway etcd and PostgreSQL servers (the test fixtures' helpers) run on private
loopback ports for the measurement and are stopped afterwards. Counts are fixed, so
the run is bounded; numbers are single runs on a shared machine: compare, do not quote.
"""

import tempfile
import time
from pathlib import Path

from appliance.osis.kv import NEW, SqliteKV
from appliance.osis.kv_etcd import EtcdKV
from appliance.osis.schema import domain
from appliance.osis.store import ObjectStore
from appliance.osis.views import PostgresViews, SqliteViews
from tests.fixtures.servers import EtcdServer, PostgresServer

N = 1000
BATCH = 100


def _machine(i: int):
    mac = f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
    return domain.Machine(guid=f"m{i}", hostname=f"node{i}", cpus=8, memory_mb=16384,
                          interfaces=[domain.NetworkInterface(mac=mac, boot=True)])


def _rate(fn, count: int) -> float:
    began = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - began)


def measure(store: ObjectStore) -> dict[str, float]:
    objs = [_machine(i) for i in range(N)]
    more = [(_machine(N + i), NEW) for i in range(N)]
    return {
        "put (create)": _rate(lambda i: store.put(objs[i], expect=NEW), N),
        "put_many x100": BATCH * _rate(lambda i: store.put_many(more[i * BATCH:(i + 1) * BATCH]), N // BATCH),
        "put (update)": _rate(lambda i: store.put(objs[i], expect=store.get("machine", f"m{i}").revision), N),
        "get": _rate(lambda i: store.get("machine", f"m{i}"), N),
        "query by mac": _rate(lambda i: store.query("machine", [("mac", "=", objs[i].interfaces[0].mac)]), N),
    }


def main() -> int:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp, EtcdServer() as etcd, PostgresServer() as pg:
        for kv_kind in ("sqlite", "etcd"):
            for views_kind in ("sqlite", "postgresql"):
                dbname = f"bench_{kv_kind}"
                kv = (SqliteKV(Path(tmp) / f"{kv_kind}-{views_kind}.db") if kv_kind == "sqlite"
                      else EtcdKV([etcd.endpoint]))
                if views_kind == "postgresql":
                    pg.drop_database(dbname)
                    views = PostgresViews(pg.create_database(dbname))
                else:
                    views = SqliteViews(Path(tmp) / f"views-{kv_kind}.db")
                store = ObjectStore(kv, views, prefix=f"bench/{views_kind}/".encode())
                rows[f"{kv_kind} + {views_kind}"] = measure(store)
                store.close()
    ops = list(next(iter(rows.values())))
    print(f"{'backends (kv + views)':24}" + "".join(f"{op:>16}" for op in ops) + "   (operations/s)"
          + "   put_many/put")
    for name, result in rows.items():
        print(f"{name:24}" + "".join(f"{result[op]:16,.0f}" for op in ops)
              + f"   {result['put_many x100'] / result['put (create)']:12.1f}x")
    return 0
