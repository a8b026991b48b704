"""The engine's change feed on etcd, where one batch of the engine's writes is one revision."""

import asyncio

from appliance.jobs.core import Policy
from appliance.jobs.engine import Engine
from appliance.osis.kv import NEW
from appliance.osis.kv_etcd import EtcdKV
from appliance.osis.schema import domain
from appliance.osis.store import ObjectStore
from appliance.osis.views import SqliteViews
from tests.fixtures.xmpp import until


def job(guid: str):
    return domain.Job(guid=guid, agent="a1", jid="a1@rack.internal", action="script")


async def test_the_feed_reads_back_none_of_a_batch_of_its_own(etcd, etcd_prefix, tmp_path, monkeypatch):
    store = ObjectStore(EtcdKV([etcd.endpoint]), SqliteViews(tmp_path / "v.db"), prefix=etcd_prefix)
    engine = Engine(lambda: store, lambda: None, "ctl@rack.internal", Policy())
    read, get_many = [], store.get_many
    monkeypatch.setattr(store, "get_many", lambda t, guids: read.append(sorted(guids)) or get_many(t, guids))
    feed = asyncio.create_task(engine._follow(store.revision()))
    try:
        revisions = await asyncio.gather(*(engine.writer.put(job(f"j{i}"), NEW) for i in range(3)))
        assert len(set(revisions)) == 1  # one batch, one etcd transaction
        await asyncio.to_thread(store.put, job("theirs"), NEW)  # not through the engine's writer
        await until(lambda: read, timeout=10)
        await asyncio.sleep(0.3)  # anything else the feed would read
        assert read == [["theirs"]] and set(engine.live) == {"theirs"}
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        store.close()
