"""The engine's group commit (appliance.jobs.writer) on a real SQLite store."""

import asyncio
import threading

import pytest

from appliance.jobs.writer import Writer
from appliance.osis.kv import NEW, Conflict, Unavailable
from appliance.osis.schema import SchemaError, domain


class Recording:
    """The real store, with each put_many batch's size recorded (and, on request, held
    until `release` is set, or made to fail once as a store that went away would)."""

    def __init__(self, store, hold: bool = False, fail_once: bool = False):
        self.store, self.hold, self.fail_once = store, hold, fail_once
        self.batches: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def put_many(self, items):
        self.batches.append(len(items))
        if self.hold and len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_once:
            self.fail_once = False
            raise Unavailable("the store went away")
        return self.store.put_many(items)


def job(guid: str, **kw):
    return domain.Job(guid=guid, agent="a1", jid="a1@rack.internal", action="script", **kw)


async def test_each_caller_gets_its_own_revision_or_conflict(store):
    store.put(job("j3"), expect=NEW)
    stale = store.get("job", "j3").revision
    store.put(job("j3", output="moved on"), expect=stale)
    writer = Writer(lambda: store)
    results = await asyncio.gather(*(writer.put(job(f"j{i}"), NEW) for i in range(6)),
                                   writer.put(job("j3", output="stale"), stale), return_exceptions=True)
    assert [type(r) for r in results] == [int, int, int, Conflict, int, int, Conflict]
    for i, revision in enumerate(results[:6]):
        if i != 3:
            assert store.get("job", f"j{i}").revision == revision
    assert store.get("job", "j3").obj.output == "moved on"


async def test_writes_made_together_share_one_batch_and_a_lone_write_goes_at_once(store):
    rec = Recording(store)
    writer = Writer(lambda: rec)
    await asyncio.gather(*(writer.put(job(f"j{i}"), NEW) for i in range(10)))
    assert await writer.put(job("lone"), NEW) == store.revision()
    assert rec.batches == [10, 1]


async def test_writes_arriving_during_a_flush_form_the_next_batch(store):
    rec = Recording(store, hold=True)
    writer = Writer(lambda: rec)
    first = asyncio.create_task(writer.put(job("j0"), NEW))
    assert await asyncio.to_thread(rec.entered.wait, 10)
    rest = [asyncio.create_task(writer.put(job(f"j{i}"), NEW)) for i in range(1, 6)]
    await asyncio.sleep(0.05)
    assert not first.done() and rec.batches == [1]  # the rest wait for the write in flight
    rec.release.set()
    revisions = await asyncio.gather(first, *rest)
    assert rec.batches == [1, 5] and revisions == sorted(revisions)
    assert len(store.scan("job")) == 6


async def test_a_batch_is_at_most_the_limit(store):
    rec = Recording(store)
    writer = Writer(lambda: rec, limit=4)
    await asyncio.gather(*(writer.put(job(f"j{i}"), NEW) for i in range(10)))
    assert rec.batches == [4, 4, 2] and len(store.scan("job")) == 10


async def test_a_store_failure_fails_that_batch_and_the_next_write_goes_through(store):
    rec = Recording(store, fail_once=True)
    writer = Writer(lambda: rec)
    results = await asyncio.gather(*(writer.put(job(f"j{i}"), NEW) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results) and store.scan("job") == []
    assert await writer.put(job("j0"), NEW) == store.get("job", "j0").revision


async def test_a_bad_object_fails_only_its_own_write(store):
    writer = Writer(lambda: store)
    results = await asyncio.gather(writer.put(job("good1"), NEW), writer.put(job("../bad"), NEW),
                                   writer.put(job("good2"), NEW), return_exceptions=True)
    assert isinstance(results[1], SchemaError)
    assert [s.obj.guid for s in store.scan("job")] == ["good1", "good2"]
    assert isinstance(results[0], int) and isinstance(results[2], int)


async def test_a_put_cancelled_before_its_batch_is_not_written_and_drain_waits(store):
    rec = Recording(store, hold=True)
    writer = Writer(lambda: rec)
    first = asyncio.create_task(writer.put(job("j0"), NEW))
    assert await asyncio.to_thread(rec.entered.wait, 10)
    later = asyncio.create_task(writer.put(job("cancelled"), NEW))
    await asyncio.sleep(0)
    later.cancel()
    draining = asyncio.create_task(writer.drain())
    await asyncio.sleep(0.05)
    assert not draining.done()  # a write is still in flight
    rec.release.set()
    await asyncio.wait_for(draining, 10)
    assert first.done() and [s.obj.guid for s in store.scan("job")] == ["j0"]
    with pytest.raises(asyncio.CancelledError):
        await later


async def test_written_revisions_are_reported_once_their_batch_is_back(store):
    reported: list[int] = []
    rec = Recording(store, hold=True)
    writer = Writer(lambda: rec, written=reported.append)
    first = asyncio.create_task(writer.put(job("j0"), NEW))
    assert await asyncio.to_thread(rec.entered.wait, 10)
    second = asyncio.create_task(writer.put(job("j0"), NEW))  # the next batch: it conflicts
    settled = asyncio.create_task(writer.settled())
    await asyncio.sleep(0.05)
    assert not settled.done() and reported == []
    rec.release.set()
    await asyncio.wait_for(settled, 10)
    assert reported == [store.get("job", "j0").revision]
    assert await first == reported[0]
    with pytest.raises(Conflict):
        await second
    assert reported == [store.get("job", "j0").revision]  # a conflict is not reported
    await writer.settled()  # nothing in flight: at once
