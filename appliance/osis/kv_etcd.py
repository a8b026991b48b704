"""The shared key/value store: etcd (v3, through its JSON gateway with etcd3gw).

Several appliances of one domain point at the same etcd cluster. Writes that expect a
revision run as etcd transactions comparing the key's mod_revision, so two appliances
can never both win a race on one object. Endpoints are tried in order; a backend that
does not answer raises Unavailable, and nothing is written.
"""

import queue
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import etcd3gw
from etcd3gw.exceptions import Etcd3Exception
from etcd3gw.utils import _encode

from appliance.osis.kv import NEW, Change, Compacted, Conflict, Entry, Unavailable, prefix_end


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

    def _call(self, method: str, *args, **kwargs):
        """Call the first endpoint that answers, starting with the one that last did."""
        errors = []
        for step in range(len(self._clients)):
            index = (self._index + step) % len(self._clients)
            try:
                result = getattr(self._clients[index], method)(*args, **kwargs)
            except (Etcd3Exception, OSError) as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__} {exc}".strip())
                continue
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
        """Each item in its own transaction, in order (see kv.py): correct, not faster.

        One etcd transaction is all or nothing and gives every key the same revision, so a
        batch of independent compare-and-sets cannot share one. Unavailable part-way
        leaves the items before it written (each whole).
        """
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
        compare = [] if expect is None else [
            {"key": _encode(key), "result": "EQUAL", "target": "MOD", "mod_revision": expect}]
        failure = [{"request_range": {"key": _encode(key)}}]
        reply = self._call("transaction", {"compare": compare, "success": [op] if op else [],
                                           "failure": failure})
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
        self._check_not_compacted(prefix, after)
        events, cancel = self._call("watch_prefix", prefix, start_revision=after + 1)
        found: queue.Queue = queue.Queue()
        reader = threading.Thread(target=lambda: [found.put(e) for e in events], daemon=True)
        reader.start()
        batch: list[dict] = []
        try:
            batch.append(found.get(timeout=timeout))
            while True:  # and whatever else arrives within a short settle time
                batch.append(found.get(timeout=0.05))
        except queue.Empty:
            pass
        finally:
            cancel()
        return [Change(e["kv"]["key"], int(e["kv"]["mod_revision"]), e.get("type") == "DELETE")
                for e in batch]

    def _check_not_compacted(self, prefix: bytes, after: int) -> None:
        client = self._clients[self._index]
        payload = {"key": _encode(prefix), "range_end": _encode(prefix_end(prefix)),
                   "revision": after + 1, "count_only": True}
        try:
            client.post(client.get_url("/kv/range"), json=payload)
        except Etcd3Exception as exc:
            detail = f"{exc} {getattr(exc, 'detail_text', '')}"
            if "compacted" in detail:
                raise Compacted(f"changes after {after} are compacted") from None
            if "future revision" not in detail:  # nothing written after `after` yet
                raise Unavailable(f"etcd: {detail.strip()}") from None

    def close(self) -> None:
        for client in self._clients:
            client.session.close()
