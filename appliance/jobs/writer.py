"""Group commit for the workflow engine: many job writes, one `ObjectStore.put_many`.

`await writer.put(job, expect)` is `await asyncio.to_thread(store.put, job, expect)`: it
returns the job's new revision or raises its own Conflict (or the store's error). But
while one batch is being written, the writes that arrive wait, and go together as the
next batch (at most `limit`) in one thread call — one key/value transaction and one
views session, so one fsync each instead of one per write. There is no timer: a lone
write goes at once, and writes made in the same turn of the event loop (the engine
deciding about many jobs at once) share a batch.

Each item is checked on its own terms (compare-and-set on its revision), so one job's
conflict never fails another's write. A batch that fails on something other than the
store (a bug in one object) is written again item by item, so only that write fails.

`written(revision)` is called for each write that succeeded as soon as its batch is
back, before any caller resumes; `await settled()` waits for the batch in flight (if
any). Together they tell a reader of the change feed which changes are the engine's own.
"""

import asyncio
from collections.abc import Callable

from appliance.osis.kv import StoreError

LIMIT = 500  # writes in one batch


class Writer:
    """Group commit of `put`s to the store `store()` returns; see the module docstring."""

    def __init__(self, store: Callable, limit: int = LIMIT, written: Callable[[int], None] | None = None):
        self.store, self.limit = store, limit
        self.written = written or (lambda revision: None)
        self._waiting: list[tuple[object, int | None, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._batch: asyncio.Future | None = None  # done when the batch in flight is back

    async def put(self, obj, expect: int | None = None) -> int:
        """Store `obj` (compare-and-set on `expect`); its new revision, or raise its Conflict."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((obj, expect, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def settled(self) -> None:
        """Wait until the batch in flight now (if any) is back: its revisions were reported."""
        if self._batch is not None:
            await asyncio.shield(self._batch)

    async def drain(self) -> None:
        """Wait until nothing is being written (before the store is closed)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = [item for item in self._waiting[:self.limit] if not item[2].done()]
                del self._waiting[:self.limit]  # a cancelled put is not written
                if batch:
                    await self._write(batch)
        finally:
            self._flusher = None
            for *_, future in self._waiting:  # only left when the flusher was cancelled
                future.cancel()
            self._waiting.clear()

    async def _write(self, batch: list) -> None:
        items = [(obj, expect) for obj, expect, _ in batch]
        self._batch = asyncio.get_running_loop().create_future()
        try:
            try:
                results = await asyncio.to_thread(_put_many, self.store(), items)
            except Exception as exc:  # the store failed (Unavailable): so did every write
                results = [exc] * len(batch)
            for result in results:
                if not isinstance(result, BaseException):
                    self.written(result)
        except asyncio.CancelledError:
            for *_, future in batch:
                future.cancel()
            raise
        finally:
            self._batch.set_result(None)
            self._batch = None
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _put_many(store, items: list) -> list:
    """store.put_many; if it fails other than as a store, each item alone (its error or result)."""
    try:
        return store.put_many(items)
    except StoreError:
        raise
    except Exception:
        if len(items) == 1:
            raise
    return [_put_one(store, item) for item in items]


def _put_one(store, item):
    try:
        return store.put_many([item])[0]
    except Exception as exc:
        return exc
