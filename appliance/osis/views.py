"""Queryable SQL views of the stored objects: SQLite (embedded) or PostgreSQL (shared).

One table per type, `v_<type>`, with the guid, the object's revision and the columns its
type declares; a multi-valued column has a child table `v_<type>__<column>`. A row is
only ever replaced by a newer revision (the upsert is guarded), so replaying changes in
any order converges. The views are derived data: the key/value store is the truth, and
`ObjectStore.repair()` / `reindex()` rebuild them from it.
"""

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from appliance.osis.kv import Unavailable
from appliance.osis.schema import ObjectType, SchemaError

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
SQL_TYPE = {"text": "TEXT", "integer": "BIGINT", "real": "DOUBLE PRECISION"}
Where = Iterable[tuple[str, str, object]]


def _table(otype: ObjectType, column=None) -> str:
    return f"v_{otype.name}" + (f"__{column.name}" if column else "")


class SqlViews:
    """The SQL shared by both backends; subclasses provide connections and placeholders."""

    mark = "?"

    def ensure(self, types: Iterable[ObjectType]) -> None:
        with self.session() as cur:
            for otype in types:
                for statement in self._ddl(otype):
                    cur.execute(statement)

    def _ddl(self, otype: ObjectType) -> Iterator[str]:
        cols = "".join(f", {c.name} {SQL_TYPE[c.sql]}" for c in otype.columns if not c.multi)
        yield (f"CREATE TABLE IF NOT EXISTS {_table(otype)} (guid TEXT PRIMARY KEY,"
               f" revision BIGINT NOT NULL{cols})")
        for col in otype.columns:
            if col.multi:
                child = _table(otype, col)
                yield (f"CREATE TABLE IF NOT EXISTS {child} (guid TEXT NOT NULL,"
                       f" value {SQL_TYPE[col.sql]} NOT NULL, PRIMARY KEY (guid, value))")
                yield f"CREATE INDEX IF NOT EXISTS {child}_value ON {child} (value)"
            else:
                yield f"CREATE INDEX IF NOT EXISTS {_table(otype)}_{col.name} ON {_table(otype)} ({col.name})"

    def upsert(self, cur, otype: ObjectType, guid: str, revision: int, obj) -> bool:
        """Write `obj`'s row unless the view already holds this or a newer revision."""
        row = otype.row(obj)
        names = ["guid", "revision", *row]
        marks = ", ".join([self.mark] * len(names))
        sets = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        cur.execute(f"INSERT INTO {_table(otype)} ({', '.join(names)}) VALUES ({marks})"
                    f" ON CONFLICT (guid) DO UPDATE SET {sets}"
                    f" WHERE {_table(otype)}.revision < excluded.revision",
                    [guid, revision, *row.values()])
        if cur.rowcount != 1:
            return False
        for col in otype.columns:
            if col.multi:
                self._replace_children(cur, otype, col, guid, col.read(obj))
        return True

    def _replace_children(self, cur, otype, col, guid, values) -> None:
        cur.execute(f"DELETE FROM {_table(otype, col)} WHERE guid = {self.mark}", [guid])
        for value in values:
            cur.execute(f"INSERT INTO {_table(otype, col)} VALUES ({self.mark}, {self.mark})",
                        [guid, value])

    def remove(self, cur, otype: ObjectType, guid: str, revision: int | None = None) -> None:
        """Drop `guid`'s rows (only if older than `revision`, when given)."""
        guard = "" if revision is None else f" AND revision < {self.mark}"
        cur.execute(f"DELETE FROM {_table(otype)} WHERE guid = {self.mark}{guard}",
                    [guid] if revision is None else [guid, revision])
        if cur.rowcount:
            for col in otype.columns:
                if col.multi:
                    cur.execute(f"DELETE FROM {_table(otype, col)} WHERE guid = {self.mark}", [guid])

    def revisions(self, otype: ObjectType) -> dict[str, int]:
        with self.session(write=False) as cur:
            cur.execute(f"SELECT guid, revision FROM {_table(otype)}")
            return dict(cur.fetchall())

    def clear(self, otype: ObjectType) -> None:
        with self.session() as cur:
            cur.execute(f"DELETE FROM {_table(otype)}")
            for col in otype.columns:
                if col.multi:
                    cur.execute(f"DELETE FROM {_table(otype, col)}")

    def query(self, otype: ObjectType, where: Where = (), order_by: str | None = None,
              descending: bool = False, limit: int | None = None) -> list[str]:
        """Guids of the objects whose columns match every (column, operator, value)."""
        clauses, args = [], []
        for name, op, value in where:
            clause, value = self._condition(otype, name, op, value)
            clauses.append(clause)
            args.append(value)
        sql = f"SELECT guid FROM {_table(otype)} v"
        sql += f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql += f" ORDER BY {self._order(otype, order_by)} {'DESC' if descending else 'ASC'}, guid"
        if limit is not None:
            if not isinstance(limit, int) or limit < 0:
                raise SchemaError(f"limit must be a whole number >= 0, not {limit!r}")
            sql += f" LIMIT {int(limit)}"
        with self.session(write=False) as cur:
            cur.execute(sql, args)
            return [row[0] for row in cur.fetchall()]

    def _condition(self, otype: ObjectType, name: str, op: str, value) -> tuple[str, object]:
        if op not in OPERATORS:
            raise SchemaError(f"unknown operator {op!r} (operators: {' '.join(OPERATORS)})")
        col = otype.column(name)
        value = _convert(col, value)
        if col.multi:  # "has a value that …"; != is "has no value equal to …"
            neg = "NOT " if op == "!=" else ""
            cmp = "=" if op == "!=" else op
            return (f"v.guid {neg}IN (SELECT guid FROM {_table(otype, col)}"
                    f" WHERE value {cmp} {self.mark})", value)
        return f"v.{col.name} {op} {self.mark}", value

    @staticmethod
    def _order(otype: ObjectType, order_by: str | None) -> str:
        if order_by in (None, "guid"):
            return "v.guid"
        col = otype.column(order_by)
        if col.multi:
            raise SchemaError(f"cannot order by multi-valued column {order_by!r}")
        return f"v.{col.name}"


def _convert(col, value):
    try:
        return {"text": str, "integer": int, "real": float}[col.sql](value)
    except (TypeError, ValueError):
        raise SchemaError(f"{col.name}: {value!r} is not {col.sql}") from None


class SqliteViews(SqlViews):
    """Views in a local SQLite file."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")

    @contextlib.contextmanager
    def session(self, write: bool = True):
        """A cursor inside one transaction, committed when the block ends without error."""
        with self._lock:
            try:
                cur = self._db.cursor()
            except sqlite3.Error as exc:  # closed
                raise Unavailable(f"views {self.path}: {exc}") from exc
            try:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.rollback()
                raise Unavailable(f"views {self.path}: {exc}") from exc
            except BaseException:
                self._db.rollback()
                raise

    def close(self) -> None:
        with self._lock:  # not under a session another thread has open (that would crash)
            self._db.close()


class PostgresViews(SqlViews):
    """Views in PostgreSQL, through a small psycopg connection pool."""

    mark = "%s"

    def __init__(self, dsn: str, max_size: int = 4, timeout: float = 5.0):
        import psycopg_pool

        self.pool = psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=max_size,
                                                timeout=timeout, open=False,
                                                kwargs={"connect_timeout": int(timeout)})
        try:
            self.pool.open(wait=True, timeout=timeout)
        except psycopg_pool.PoolTimeout as exc:
            self.pool.close()
            raise Unavailable(f"PostgreSQL unreachable: {exc}") from None

    @contextlib.contextmanager
    def session(self, write: bool = True):
        import psycopg
        import psycopg_pool

        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise Unavailable(f"PostgreSQL: {exc}") from exc

    def close(self) -> None:
        self.pool.close()
