"""The object store: typed objects in the key/value store, their views kept in step.

    store = open_store(cfg.osis, state_dir)
    rev = store.put(machine, expect=NEW)          # create; Conflict if it exists
    got = store.get("machine", guid)              # Stored(obj, revision)
    store.put(got.obj, expect=got.revision)       # update; Conflict if changed meanwhile
    store.put_many([(a, NEW), (b, rev_b)])        # each on its own terms: [revision | Conflict]
    store.query("machine", [("mac", "=", "52:54:00:12:34:56")])

Writes go to the key/value store first (the truth), then to the view. A crash between
the two leaves the view behind; `repair()` — run at start-up — finds every row whose
revision differs from the store's and fixes it. `put_many` (group commit) is the same
two writes for a whole batch: one key/value transaction, then one views session.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from appliance.osis import codec
from appliance.osis.codec import CorruptValue
from appliance.osis.kv import KV, NEW, Change, Conflict, StoreError
from appliance.osis.schema import TYPES, ObjectType, check_guid, object_type, type_of
from appliance.osis.views import SqlViews, Where

log = logging.getLogger("appliance.osis")
PREFIX = b"osis/"

__all__ = ["NEW", "ObjectStore", "Stored", "Results", "NotFound", "CorruptObject", "open_store"]


class NotFound(StoreError):
    """No object of that type has that id."""


class CorruptObject(StoreError):
    """A stored value failed its frame check; it is reported, never returned."""


@dataclass(frozen=True)
class Stored:
    obj: object
    revision: int


class Results(list):
    """Objects found; `corrupt` names the keys whose values failed their check."""

    def __init__(self, items=()):
        super().__init__(items)
        self.corrupt: list[str] = []


@dataclass
class Repair:
    """What repair() did to one type's view: rows rewritten, and keys found corrupt."""

    fixed: int = 0
    corrupt: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ObjectChange:
    type: str
    guid: str
    revision: int
    deleted: bool


class ObjectStore:
    def __init__(self, kv: KV, views: SqlViews, prefix: bytes = PREFIX):
        self.kv, self.views, self.prefix = kv, views, prefix
        self.views.ensure(TYPES.values())

    def key_of(self, otype: ObjectType, guid: str) -> bytes:
        return self.prefix + f"{otype.name}/{guid}".encode()

    def get(self, type_name: str, guid: str) -> Stored:
        otype = object_type(type_name)
        entry = self.kv.get(self.key_of(otype, check_guid(guid)))
        if entry is None:
            raise NotFound(f"no {otype.name} {guid}")
        return Stored(self._decode(otype, entry.key, entry.value), entry.revision)

    def get_many(self, type_name: str, guids: list[str]) -> dict[str, Stored]:
        """The objects of those ids that exist, by id (in one call: for batches)."""
        otype = object_type(type_name)
        found = {}
        for guid in guids:
            entry = self.kv.get(self.key_of(otype, check_guid(guid)))
            if entry is not None:
                found[guid] = Stored(self._decode(otype, entry.key, entry.value), entry.revision)
        return found

    def put(self, obj, expect: int | None = None) -> int:
        """Store `obj` under its guid; returns its new revision. See kv.py for `expect`."""
        (result,) = self.put_many([(obj, expect)])
        if isinstance(result, Conflict):
            raise result
        return result

    def put_many(self, items: list[tuple[object, int | None]]) -> list[int | Conflict]:
        """Store each (obj, expect) on its own terms, as put() one after the other would.

        Each item's result is its new revision, or its Conflict (that item is not written,
        the others are); with etcd the items of a batch share one revision. The batch is
        one key/value transaction (etcd: one per 128 objects, see kv_etcd.py) and one views
        session. A bad object fails the batch before anything is written; Unavailable
        part-way means nothing written with SQLite, the transactions before it with etcd
        (each whole; their view rows are caught up as after a crash).
        """
        batch = [(type_of(obj), obj, expect) for obj, expect in items]
        writes = [(self.key_of(otype, check_guid(obj.guid)), codec.encode(obj), expect)
                  for otype, obj, expect in batch]
        if not writes:
            return []
        with self.views.session() as cur:  # the view backend answers before anything is written
            results = self.kv.put_many(writes)
            for (otype, obj, _), result in zip(batch, results, strict=True):
                if not isinstance(result, Conflict):
                    self.views.upsert(cur, otype, obj.guid, result, obj)
        return results

    def delete(self, type_name: str, guid: str, expect: int | None = None) -> int:
        otype = object_type(type_name)
        with self.views.session() as cur:
            revision = self.kv.delete(self.key_of(otype, check_guid(guid)), expect)
            if revision is None:
                raise NotFound(f"no {otype.name} {guid}")
            self.views.remove(cur, otype, guid, revision)
        return revision

    def scan(self, type_name: str) -> Results:
        """Every object of a type, in id order, from the key/value store."""
        otype = object_type(type_name)
        found = Results()
        for entry in self.kv.scan(self.key_of(otype, "")):
            self._collect(found, otype, entry)
        return found

    def query(self, type_name: str, where: Where = (), order_by: str | None = None,
              descending: bool = False, limit: int | None = None) -> Results:
        otype = object_type(type_name)
        found = Results()
        for guid in self.views.query(otype, where, order_by, descending, limit):
            entry = self.kv.get(self.key_of(otype, guid))
            if entry is not None:  # deleted since the view was read
                self._collect(found, otype, entry)
        return found

    def changes(self, after: int, timeout: float = 1.0) -> list[ObjectChange]:
        """Changes to any object after store revision `after` (waits up to `timeout`)."""
        out = []
        for change in self.kv.changes(self.prefix, after, timeout):
            type_name, _, guid = change.key[len(self.prefix):].decode().partition("/")
            out.append(ObjectChange(type_name, guid, change.revision, change.deleted))
        return out

    def apply(self, changes: list[Change | ObjectChange]) -> None:
        """Bring the views up to date with changes made elsewhere (another appliance)."""
        for change in changes:
            otype = TYPES.get(change.type)
            if otype is not None:
                self._sync_one(otype, change.guid)

    def repair(self) -> dict[str, Repair]:
        """Make every view agree with the key/value store; what was done, per type."""
        return {otype.name: self._repair_type(otype) for otype in TYPES.values()}

    def reindex(self) -> dict[str, Repair]:
        """Rebuild every view from scratch; rows written (and corrupt keys) per type."""
        for otype in TYPES.values():
            self.views.clear(otype)
        return self.repair()

    def revision(self) -> int:
        return self.kv.revision()

    def close(self) -> None:
        self.kv.close()
        self.views.close()

    def _repair_type(self, otype: ObjectType) -> Repair:
        in_view = self.views.revisions(otype)
        done = Repair()
        with self.views.session() as cur:
            for entry in self.kv.scan(self.key_of(otype, "")):
                guid = entry.key.decode().rsplit("/", 1)[1]
                if in_view.pop(guid, None) != entry.revision:
                    self._refresh(cur, otype, guid, entry, done)
            for guid in in_view:  # rows of objects the store no longer has
                self.views.remove(cur, otype, guid)
                done.fixed += 1
        if done.fixed:
            log.warning("osis.view_repaired", extra={"fields": {"type": otype.name, "rows": done.fixed}})
        return done

    def _refresh(self, cur, otype: ObjectType, guid: str, entry, done: Repair | None = None) -> None:
        self.views.remove(cur, otype, guid)
        try:
            obj = self._decode(otype, entry.key, entry.value)
        except CorruptObject as exc:
            if done is not None:
                done.corrupt.append(str(exc))
            return
        self.views.upsert(cur, otype, guid, entry.revision, obj)
        if done is not None:
            done.fixed += 1

    def _sync_one(self, otype: ObjectType, guid: str) -> None:
        entry = self.kv.get(self.key_of(otype, guid))
        with self.views.session() as cur:
            if entry is None:
                self.views.remove(cur, otype, guid)
            else:
                self._refresh(cur, otype, guid, entry)

    def _collect(self, found: Results, otype: ObjectType, entry) -> None:
        try:
            found.append(Stored(self._decode(otype, entry.key, entry.value), entry.revision))
        except CorruptObject as exc:
            found.corrupt.append(str(exc))

    @staticmethod
    def _decode(otype: ObjectType, key: bytes, value: bytes):
        try:
            return codec.decode(value, otype)
        except CorruptValue as exc:
            log.error("osis.corrupt", extra={"fields": {"key": key.decode(), "reason": str(exc)}})
            raise CorruptObject(f"{key.decode()}: corrupt stored value ({exc})") from None


def open_store(cfg, state_dir: str | Path) -> ObjectStore:
    """The store the [osis] table describes; state files live under `state_dir`/osis."""
    from appliance.osis.kv import SqliteKV
    from appliance.osis.kv_etcd import EtcdKV
    from appliance.osis.views import PostgresViews, SqliteViews

    base = Path(state_dir) / "osis"
    kv = EtcdKV(cfg.etcd_endpoints) if cfg.kv == "etcd" else SqliteKV(base / "objects.db")
    try:
        views = (PostgresViews(cfg.postgresql_dsn) if cfg.views == "postgresql"
                 else SqliteViews(base / "views.db"))
        return ObjectStore(kv, views)
    except BaseException:
        kv.close()
        raise
