"""etcd's put_many on the real etcd: one transaction per batch, chunked to etcd's limits, and
the same results as SQLite's; the change feed gives followers every key of a revision."""

import contextlib
import socket
import threading
import time

import pytest
from etcd3gw.exceptions import Etcd3Exception
from etcd3gw.utils import _encode

from appliance.osis.kv import NEW, Conflict, Refused, SqliteKV, Unavailable
from appliance.osis.kv_etcd import MAX_TXN_OPS, EtcdKV
from appliance.osis.schema import domain
from appliance.osis.store import ObjectStore
from appliance.osis.views import SqliteViews
from tests.fixtures.servers import free_port


@pytest.fixture
def kv(etcd, etcd_prefix):
    kv = EtcdKV([etcd.endpoint])
    yield kv
    kv.close()


@pytest.fixture
def k(etcd_prefix):
    return lambda name: etcd_prefix + name.encode()


def test_max_txn_ops_is_what_etcd_allows(etcd, k):
    def puts(n):
        return {"success": [{"request_put": {"key": _encode(k(f"o{i}")), "value": ""}}
                            for i in range(n)]}

    assert etcd.client().transaction(puts(MAX_TXN_OPS))["succeeded"]
    with pytest.raises(Etcd3Exception) as refused:
        etcd.client().transaction(puts(MAX_TXN_OPS + 1))
    assert "too many operations in txn request" in refused.value.detail_text


def test_an_enrollment_batch_is_one_transaction(etcd, etcd_prefix, tmp_path):
    store = ObjectStore(EtcdKV([etcd.endpoint]), SqliteViews(tmp_path / "v.db"), prefix=etcd_prefix)
    before = store.revision()
    results = store.put_many([
        (domain.Agent(guid="agent-m1", jid="m1@rack.test", machine="m1", password="pw"), NEW),
        (domain.DnsRecord(guid="m1-a", name="m1.rack.test", rtype="A", value="10.0.0.5", machine="m1"), None),
        (domain.Machine(guid="m1", hostname="m1", ip="10.0.0.5"), NEW),
    ])
    assert results == [before + 1] * 3 and store.revision() == before + 1
    assert [store.get(t, g).revision for t, g in [("agent", "agent-m1"), ("dnsrecord", "m1-a"),
                                                  ("machine", "m1")]] == results
    store.close()


def test_a_batch_without_conflicts_shares_one_revision(kv, k):
    kv.put(k("old"), b"0")
    old = kv.get(k("old")).revision
    batch = [(k(f"n{i}"), b"x", NEW) for i in range(10)] + [(k("old"), b"1", old), (k("any"), b"2", None)]
    results = kv.put_many(batch)
    assert len(set(results)) == 1 and results[0] == kv.revision() == old + 1
    assert {e.key: e.revision for e in kv.scan(k(""))} == {key: old + 1 for key, _, _ in batch}


def test_conflicts_are_reported_and_the_others_written_in_one_transaction(kv, k):
    kv.put(k("a"), b"a0")
    kv.put(k("b"), b"b0")
    a, b = kv.get(k("a")).revision, kv.get(k("b")).revision
    kv.put(k("b"), b"b1")  # b moves on: the batch's read of it is stale
    before = kv.revision()
    results = kv.put_many([(k("a"), b"a1", a), (k("b"), b"lost", b), (k("c"), b"c1", NEW),
                           (k("d"), b"d1", None), (k("a"), b"again", NEW)])
    assert [type(r) for r in results] == [int, Conflict, int, int, Conflict]
    assert (results[1].key, results[1].expected, results[1].actual) == (k("b"), b, before)
    assert results[0] == results[2] == results[3] == kv.revision() == before + 1  # one write
    assert (results[4].key, results[4].expected, results[4].actual) == (k("a"), NEW, before + 1)
    assert {e.key: e.value for e in kv.scan(k(""))} == {
        k("a"): b"a1", k("b"): b"b1", k("c"): b"c1", k("d"): b"d1"}


def test_a_race_lost_by_the_second_transaction_falls_back_to_one_per_item(kv, k, monkeypatch):
    for name in ("a", "b", "c"):
        kv.put(k(name), b"0")
    a, b = kv.get(k("a")).revision, kv.get(k("b")).revision
    calls, real = [], kv._put_txn

    def racing(items):
        calls.append(len(items))
        if len(calls) == 2:  # between the two transactions, another writer takes b
            kv.put(k("b"), b"theirs")
        return real(items)

    monkeypatch.setattr(kv, "_put_txn", racing)
    results = kv.put_many([(k("a"), b"a1", a), (k("b"), b"b1", b), (k("c"), b"c1", NEW)])
    assert calls == [3, 2]  # c conflicted; a and b went again, and lost b to the race
    assert [type(r) for r in results] == [int, Conflict, Conflict]
    assert results[1].actual == kv.get(k("b")).revision and kv.get(k("b")).value == b"theirs"
    assert kv.get(k("a")).value == b"a1" and kv.get(k("a")).revision == results[0]


def _symbolic(results, pre):
    """Conflicts as (expected, actual) named by what they are: 'new', 'pre' (the revision the
    key had before the batch) or the index of the item whose write it is; writes as 'written'."""
    names = {NEW: "new", pre: "pre"}
    names |= {rev: i for i, rev in reversed(list(enumerate(results))) if isinstance(rev, int)}
    return [(names[r.expected], names[r.actual]) if isinstance(r, Conflict) else "written"
            for r in results]


REPEATS = {  # (key, value, expect); "pre" is the revision key p has before the batch
    "new twice": [("a", "1", NEW), ("a", "2", NEW)],
    "new, then any": [("a", "1", NEW), ("b", "1", NEW), ("a", "2", None)],
    "stale after the first": [("p", "1", "pre"), ("q", "1", NEW), ("p", "2", "pre")],
    "any, then stale": [("p", "1", None), ("p", "2", "pre"), ("p", "3", NEW)],
    "conflict, then any": [("p", "1", NEW), ("p", "2", None), ("p", "3", "pre")],
}


@pytest.mark.parametrize("case", REPEATS.values(), ids=REPEATS.keys())
def test_a_repeated_key_gives_what_sqlite_gives(case, kv, k, tmp_path):
    outcomes = []
    sqlite = SqliteKV(tmp_path / "kv.db")
    for store, name in [(sqlite, lambda n: b"s/" + n.encode()), (kv, k)]:
        store.put(name("p"), b"0")
        pre = store.get(name("p")).revision
        results = store.put_many([(name(key), value.encode(), pre if expect == "pre" else expect)
                                  for key, value, expect in case])
        written = {key: r for (key, _, _), r in zip(case, results, strict=True) if isinstance(r, int)}
        assert {key: store.get(name(key)).revision for key in written} == written  # the last
        revisions = [r for r in results if isinstance(r, int)]
        assert revisions == sorted(revisions)
        outcomes.append((_symbolic(results, pre),
                         {e.key[len(name("")):]: e.value for e in store.scan(name(""))}))
    sqlite.close()
    assert outcomes[0] == outcomes[1]


def test_a_long_batch_goes_in_chunks_of_max_txn_ops(kv, k):
    before = kv.revision()
    results = kv.put_many([(k(f"m{i:03}"), b"x" * 100, NEW) for i in range(300)])
    assert all(isinstance(r, int) for r in results)
    assert results == [before + 1] * 128 + [before + 2] * 128 + [before + 3] * 44
    assert kv.revision() == before + 3 and len(list(kv.scan(k("m")))) == 300


def test_a_large_batch_goes_in_chunks_etcd_accepts(kv, k):
    """Twenty 100 kB values: 2 MB, more than etcd's 1.5 MiB request limit in one go."""
    results = kv.put_many([(k(f"big{i}"), bytes([i]) * 100_000, NEW) for i in range(20)])
    assert all(isinstance(r, int) for r in results) and len(set(results)) == 2
    assert [e.value[:1] for e in kv.scan(k("big"))] == [bytes([i]) for i in sorted(range(20), key=str)]


def test_an_unreachable_etcd_raises_unavailable(kv, k):
    dead = EtcdKV([f"http://127.0.0.1:{free_port()}"], timeout=2)
    with pytest.raises(Unavailable, match="etcd unreachable"):
        dead.put_many([(k("a"), b"1", NEW), (k("b"), b"1", None)])
    dead.close()
    assert list(kv.scan(k(""))) == []


def follow(kv, prefix, after, until, timeout=10.0):
    """What a follower sees, going on from the last revision it saw (as the osis component,
    DNS, accounts and job followers do), until it has `until` changes."""
    seen = []
    while len(seen) < until:
        batch = kv.changes(prefix, after, timeout=timeout)
        assert batch, f"no change within {timeout} s after {len(seen)}"
        seen += batch
        after = max(c.revision for c in batch)
    return seen


def test_a_follower_sees_every_key_of_one_transaction(kv, k):
    after = kv.revision()
    first = kv.put_many([(k("agent"), b"a", NEW), (k("dns"), b"d", None), (k("machine"), b"m", NEW)])
    second = kv.put_many([(k(f"n{i}"), b"n", NEW) for i in range(3)])
    seen = follow(kv, k(""), after, 6)
    assert [(c.key, c.revision) for c in seen] == [
        (k("agent"), first[0]), (k("dns"), first[0]), (k("machine"), first[0]),
        *((k(f"n{i}"), second[0]) for i in range(3))]


def test_a_waiting_follower_sees_every_key_of_one_transaction(kv, k):
    after, seen = kv.revision(), []
    waiting = threading.Thread(target=lambda: seen.extend(kv.changes(k(""), after, timeout=10)))
    waiting.start()
    time.sleep(0.3)  # the watch is open by now (if not, it reads the write from history)
    (revision, *_) = kv.put_many([(k(name), b"v", NEW) for name in ("agent", "dns", "machine")])
    waiting.join(15)
    assert [(c.key, c.revision) for c in seen] == [(k(n), revision) for n in ("agent", "dns", "machine")]


def test_a_follower_sees_every_key_of_a_long_batch(kv, k):
    after = kv.revision()
    kv.put_many([(k(f"m{i:03}"), b"v" * 500, NEW) for i in range(300)])  # watch responses > 64 kB
    seen = follow(kv, k(""), after, 300)
    assert sorted(c.key for c in seen) == [k(f"m{i:03}") for i in range(300)]



def test_a_follower_leaves_no_watch_behind(kv, k):
    for _ in range(5):
        assert kv.changes(k(""), kv.revision(), timeout=0.1) == []
    kv.put(k("a"), b"1")
    assert len(kv.changes(k(""), 0, timeout=1)) == 1
    deadline = time.monotonic() + 5
    while any(t.name == "etcd-watch" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "etcd-watch"]


def test_a_value_etcd_refuses_is_refused_at_once_not_unavailable(etcd, kv, k):
    """One value over etcd's request limit (1.5 MiB): etcd's reason, no tour of the other
    endpoints, nothing written; a store still answering afterwards."""
    down = f"http://127.0.0.1:{free_port()}"
    both = EtcdKV([etcd.endpoint, down], timeout=2)
    with pytest.raises(Refused, match="etcd refused the request: .*too large"):
        both.put(k("huge"), b"x" * 2_000_000, NEW)
    with pytest.raises(Refused):  # the huge item is a chunk of its own (MAX_TXN_BYTES)
        both.put_many([(k("small"), b"1", NEW), (k("huge"), b"x" * 2_000_000, NEW)])
    assert kv.get(k("huge")) is None and kv.get(k("small")).value == b"1"  # its chunk went
    assert both.put(k("fine"), b"1", NEW) > 0
    both.close()


def test_an_endpoint_that_is_down_is_passed_over(etcd, k):
    both = EtcdKV([f"http://127.0.0.1:{free_port()}", etcd.endpoint], timeout=2)
    assert both.put(k("a"), b"1", NEW) > 0 and both.get(k("a")).value == b"1"
    both.close()


class Swallower:
    """A TCP proxy on loopback in front of etcd that drops etcd's answers from the first
    transaction on (reads and etcd3gw's version check pass): etcd applies the write, the
    client hears nothing — a reply lost on the way back."""

    def __init__(self, upstream_port: int):
        self.upstream, self.server = upstream_port, socket.create_server(("127.0.0.1", 0))
        self.port, self.open = self.server.getsockname()[1], []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                self.open += [client, upstream]
                swallow = threading.Event()
                threading.Thread(target=self._pipe, args=(client, upstream, swallow, True), daemon=True).start()
                threading.Thread(target=self._pipe, args=(upstream, client, swallow, False), daemon=True).start()

    @staticmethod
    def _pipe(source, target, swallow, requests):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if requests and b"/kv/txn" in data:
                    swallow.set()
                if requests or not swallow.is_set():
                    target.sendall(data)

    def close(self):
        for sock in [self.server, *self.open]:
            sock.close()


def test_a_write_without_an_answer_is_not_sent_again_elsewhere(etcd, kv, k):
    """The reply to a committed write is lost: asking the next endpoint would find the
    write done and call it a Conflict. Unavailable says what is known instead."""
    proxy = Swallower(int(etcd.endpoint.rsplit(":", 1)[1]))
    both = EtcdKV([f"http://127.0.0.1:{proxy.port}", etcd.endpoint], timeout=1)
    try:
        with pytest.raises(Unavailable, match="may have been applied"):
            both.put(k("once"), b"1", NEW)
        assert kv.get(k("once")).value == b"1"  # it was
        with pytest.raises(Unavailable, match="may have been applied"):
            both.put_many([(k("m1"), b"1", NEW), (k("m2"), b"2", NEW)])
        assert [e.value for e in kv.scan(k("m"))] == [b"1", b"2"]
        assert both.get(k("once")).value == b"1"  # reads still go on to the next endpoint
    finally:
        both.close()
        proxy.close()


def test_a_follower_goes_on_when_the_first_endpoint_is_down(etcd, kv, k):
    """changes() asks every endpoint in turn, its compaction check too: a dead first
    endpoint must not stop a follower for good."""
    follower = EtcdKV([f"http://127.0.0.1:{free_port()}", etcd.endpoint], timeout=2)
    try:
        after = kv.revision()
        kv.put(k("seen"), b"1", NEW)
        assert [c.key for c in follower.changes(k(""), after, timeout=5)] == [k("seen")]
    finally:
        follower.close()
