"""The shared key/value store: etcd (v3, through its JSON gateway with etcd3gw).

Several appliances of one domain point at the same etcd cluster. Writes that expect a
revision run as etcd transactions comparing the key's mod_revision, so two appliances
can never both win a race on one object. Endpoints are tried in order; a backend that
does not answer raises Unavailable, and nothing is written.

`put_many` writes a batch as one transaction (a batch longer than MAX_TXN_OPS items or
larger than MAX_TXN_BYTES, or one that names a key twice, as several in order, each
atomic on its own). An etcd transaction gives every key it writes the same revision, so
the items of one batch share theirs, and a follower of `changes` sees several keys at
one revision: etcd sends them in one watch response, and `changes` returns whole
responses, so a follower that goes on after the last revision it saw misses none.
"""

import json
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from functools import partial
from urllib.parse import urlsplit

import etcd3gw
import requests
import urllib3
from etcd3gw.client import _EXCEPTIONS_BY_CODE
from etcd3gw.exceptions import (
    ApiVersionDiscoveryFailedError,
    ConnectionFailedError,
    ConnectionTimeoutError,
    Etcd3Exception,
    InternalServerError,
)
from etcd3gw.utils import _decode, _encode

from appliance.osis.kv import NEW, Change, Compacted, Conflict, Entry, Refused, Unavailable, prefix_end

# What another endpoint may not have: no connection, no answer in time, an endpoint without
# a leader (the gateway's 503 and 500). Any other error is etcd's answer to the request.
DOWN = (ConnectionFailedError, ConnectionTimeoutError, InternalServerError,
        ApiVersionDiscoveryFailedError, OSError)

# etcd refuses a transaction with more than --max-txn-ops operations in any one of its
# lists (compare, success, failure): 128 unless the cluster was started with another value
# (embed.DefaultMaxTxnOps; checkTxnRequest in etcdserver/api/v3rpc/key.go).
MAX_TXN_OPS = 128
# …and a request larger than --max-request-bytes (1.5 MiB by default): keys and values of
# one transaction are kept under 1 MiB, with room for the request's own framing.
MAX_TXN_BYTES = 1024 * 1024
TXN_OP_OVERHEAD = 64  # bytes: a generous bound on the framing of one item's three operations


class EtcdKV:
    def __init__(self, endpoints: list[str] | tuple[str, ...], timeout: float = 5.0):
        if not endpoints:
            raise Unavailable("no etcd endpoints configured")
        self.endpoints = list(endpoints)
        self._clients = [self._client(url, timeout) for url in self.endpoints]
        self._index = 0

    @staticmethod
    def _client(url: str, timeout: float):
        parts = urlsplit(url)
        return etcd3gw.client(host=parts.hostname, port=parts.port or 2379,
                              protocol=parts.scheme or "http", timeout=timeout)

    def _call(self, method: str | Callable, *args, write: bool = False, **kwargs):
        """Call the first endpoint that answers, starting with the one that last did: a
        client method by name, or a function taking the client first. An endpoint that is
        down is passed over (Unavailable when all are); a request etcd turns down (e.g.
        larger than its --max-request-bytes) raises Refused with etcd's reason at once.

        A `write` goes to the next endpoint only if it surely never reached etcd (no
        connection, or the gateway's 503). One that may have (no answer in time, the
        connection cut, etcd's 500 "request timed out", which can still commit) raises
        Unavailable at once: sent again elsewhere it would find its own write and come
        back as a Conflict, or apply twice."""
        errors = []
        for step in range(len(self._clients)):
            index = (self._index + step) % len(self._clients)
            client = self._clients[index]
            call = getattr(client, method) if isinstance(method, str) else partial(method, client)
            try:
                result = call(*args, **kwargs)
            except DOWN as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__} {exc}".strip())
                if write and not _unsent(exc):
                    raise Unavailable(f"etcd: no answer to a write, which may have been applied"
                                      f" (read it back before trying again): {errors[-1]}") from None
                continue
            except Etcd3Exception as exc:
                raise Refused(f"etcd refused the request: {_reason(exc)}") from None
            self._index = index
            return result
        raise Unavailable("etcd unreachable: " + "; ".join(errors))

    def get(self, key: bytes) -> Entry | None:
        found = self._call("get", key, metadata=True)
        if not found:
            return None
        value, meta = found[0]
        return Entry(key, value, int(meta["mod_revision"]))

    def put(self, key: bytes, value: bytes, expect: int | None = None) -> int:
        op = {"request_put": {"key": _encode(key), "value": _encode(value)}}
        return self._txn(key, expect, op)

    def put_many(self, items: list[tuple[bytes, bytes, int | None]]) -> list[int | Conflict]:
        """Each (key, value, expect) on its own terms, in order (see kv.py); results in order.

        A chunk of items (see `_chunks`) is one etcd transaction: if every expect holds, all
        of it is written at once, every item with the transaction's one revision. If some
        do not, their Conflicts are read from the same transaction and the others go again
        as one transaction; if that one loses a race too, they go one transaction each.
        Unavailable (or Refused) leaves the chunks before it written (each whole) and
        nothing of its own chunk, but for that last case: there, the items before it.
        """
        results: list[int | Conflict] = []
        for chunk in _chunks(items):
            results += self._put_chunk(chunk)
        return results

    def _put_chunk(self, items: list) -> list[int | Conflict]:
        reply = self._put_txn(items)
        if reply.get("succeeded"):
            return [int(reply["header"]["revision"])] * len(items)
        checked = [i for i, (_, _, expect) in enumerate(items) if expect is not None]
        results: list[int | Conflict | None] = [None] * len(items)
        for i, response in zip(checked, reply["responses"], strict=True):
            key, _, expect = items[i]
            kvs = response["response_range"].get("kvs", [])
            actual = int(kvs[0]["mod_revision"]) if kvs else NEW
            if actual != expect:
                results[i] = Conflict(key, expect, actual)
        rest = [i for i, result in enumerate(results) if result is None]
        if rest:
            others = [items[i] for i in rest]
            retry = self._put_txn(others)
            written = ([int(retry["header"]["revision"])] * len(rest) if retry.get("succeeded")
                       else self._one_by_one(others))
            for i, result in zip(rest, written, strict=True):
                results[i] = result
        return results

    def _put_txn(self, items: list) -> dict:
        """One transaction: put every item if every expect holds, else read those keys."""
        compare, success, failure = [], [], []
        for key, value, expect in items:
            success.append({"request_put": {"key": _encode(key), "value": _encode(value)}})
            if expect is not None:
                compare.append(_compare(key, expect))
                failure.append({"request_range": {"key": _encode(key)}})
        return self._call("transaction", {"compare": compare, "success": success,
                                          "failure": failure}, write=True)

    def _one_by_one(self, items: list) -> list[int | Conflict]:
        results: list[int | Conflict] = []
        for key, value, expect in items:
            try:
                results.append(self.put(key, value, expect))
            except Conflict as exc:
                results.append(exc)
        return results

    def delete(self, key: bytes, expect: int | None = None) -> int | None:
        if expect is None:
            entry = self.get(key)
            if entry is None:
                return None
            expect = entry.revision
        if expect == NEW:
            self._txn(key, NEW, None)
            return None
        return self._txn(key, expect, {"request_delete_range": {"key": _encode(key)}})

    def _txn(self, key: bytes, expect: int | None, op: dict | None) -> int:
        compare = [] if expect is None else [_compare(key, expect)]
        failure = [{"request_range": {"key": _encode(key)}}]
        reply = self._call("transaction", {"compare": compare, "success": [op] if op else [],
                                           "failure": failure}, write=True)
        if not reply.get("succeeded"):
            kvs = reply["responses"][0]["response_range"].get("kvs", [])
            raise Conflict(key, expect, int(kvs[0]["mod_revision"]) if kvs else NEW)
        return int(reply["header"]["revision"])

    def scan(self, prefix: bytes) -> Iterator[Entry]:
        found = self._call("get_prefix", prefix, sort_order="ascend", sort_target="key")
        return iter([Entry(meta["key"], value, int(meta["mod_revision"])) for value, meta in found])

    def revision(self) -> int:
        return int(self._call("status")["header"]["revision"])

    def changes(self, prefix: bytes, after: int, timeout: float) -> list[Change]:
        """The changes after `after`, in whole revisions: a follower that goes on from the
        last revision seen misses none of the keys that share it."""
        self._check_not_compacted(prefix, after)
        responses, cancel = self._call(_watch, prefix, after + 1)
        events: list[dict] = []
        try:
            events += responses.get(timeout=timeout)
            while True:  # and whatever else arrives within a short settle time
                events += responses.get(timeout=0.05)
        except queue.Empty:
            pass
        finally:
            cancel()
        return [Change(_decode(e["kv"]["key"]), int(e["kv"]["mod_revision"]), e.get("type") == "DELETE")
                for e in events]

    def _check_not_compacted(self, prefix: bytes, after: int) -> None:
        """Compacted if etcd no longer has the revisions after `after`; asks the endpoints
        in turn like any read (a dead first endpoint must not stop every follower)."""
        payload = {"key": _encode(prefix), "range_end": _encode(prefix_end(prefix)),
                   "revision": after + 1, "count_only": True}

        def check(client) -> bool:
            try:
                client.post(client.get_url("/kv/range"), json=payload)
            except DOWN:
                raise
            except Etcd3Exception as exc:
                detail = f"{exc} {exc.detail_text or ''}"
                if "compacted" in detail:
                    return False
                if "future revision" not in detail:  # else: nothing written after `after` yet
                    raise
            return True

        if not self._call(check):
            raise Compacted(f"changes after {after} are compacted")

    def close(self) -> None:
        for client in self._clients:
            client.session.close()


def _compare(key: bytes, expect: int) -> dict:
    """The transaction's test that `key` is at revision `expect`; NEW is mod_revision 0,
    which etcd gives a missing key."""
    return {"key": _encode(key), "result": "EQUAL", "target": "MOD", "mod_revision": expect}


def _unsent(exc: BaseException) -> bool:
    """Whether a failed request surely never reached etcd. etcd3gw raises its errors
    while handling requests' own, which stays in `__context__`."""
    cause = exc.__context__
    if cause is None:  # an answer, not a failure to get one: only 503 comes before applying
        return isinstance(exc, ConnectionFailedError)
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError) and cause.args:
        reason = getattr(cause.args[0], "reason", None)  # urllib3's MaxRetryError
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _reason(exc: Etcd3Exception) -> str:
    """etcd's own words from the gateway's JSON error body, else what there is."""
    text = exc.detail_text or ""
    try:
        body = json.loads(text)
        text = body.get("message") or body.get("error") or text
    except (ValueError, AttributeError):
        pass
    return str(text).strip() or " ".join(map(str, exc.args)) or type(exc).__name__


def _chunks(items: list) -> Iterator[list]:
    """The batch cut into transactions etcd accepts, in order: at most MAX_TXN_OPS items and
    about MAX_TXN_BYTES each, and a key at most once (etcd refuses a transaction that puts
    one key twice): a repeated key starts a new chunk, so its expect is checked against the
    revision its earlier item just got, as SQLite does it."""
    chunk: list = []
    keys: set[bytes] = set()
    size = 0
    for item in items:
        key, value, _ = item
        cost = 3 * len(key) + len(value) + TXN_OP_OVERHEAD  # key in compare, put and range
        if chunk and (len(chunk) == MAX_TXN_OPS or key in keys or size + cost > MAX_TXN_BYTES):
            yield chunk
            chunk, keys, size = [], set(), 0
        chunk.append(item)
        keys.add(key)
        size += cost
    if chunk:
        yield chunk


def _watch(client, prefix: bytes, start: int) -> tuple[queue.Queue, Callable[[], None]]:
    """Watch `prefix` from revision `start`: a queue that gets the events of each watch
    response as one list, and the function that ends the watch. etcd sends all the events
    of one revision in one response (unless asked for fragments), and etcd3gw's own watch
    hands them over one by one, which lets a reader stop half-way through a revision."""
    create = {"key": _encode(prefix), "range_end": _encode(prefix_end(prefix)),
              "start_revision": start}
    try:
        resp = client.session.post(client.get_url("/watch"), json={"create_request": create},
                                   stream=True, timeout=(client.timeout, None))
    except requests.RequestException as exc:
        raise ConnectionFailedError(str(exc)) from None
    if resp.status_code != 200:  # sorted by etcd3gw's own table: down, or a refusal
        text = resp.text
        resp.close()
        raise _EXCEPTIONS_BY_CODE.get(resp.status_code, Etcd3Exception)(text, resp.reason)
    responses: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for line in resp.iter_lines(chunk_size=None):
                events = json.loads(line).get("result", {}).get("events") if line.strip() else None
                if events:
                    responses.put(events)
        except (requests.RequestException, OSError, ValueError):
            pass  # cancelled (or the connection broke): the caller stops reading anyway

    def cancel() -> None:
        try:  # wakes the reader blocked in recv(), as etcd3gw's Watcher.stop does
            with socket.socket(fileno=os.dup(resp.raw.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass  # already closed
        resp.close()

    threading.Thread(target=read, name="etcd-watch", daemon=True).start()
    return responses, cancel
