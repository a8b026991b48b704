"""The monitoring scheduler against real agents on a real ejabberd: samples land in OSIS,
offline agents are left alone, garbage is counted and never stored, polls are bounded."""

import asyncio
import contextlib
import logging
import os
import textwrap
import time

from prometheus_client import REGISTRY

from appliance.monitoring.scheduler import Scheduler
from appliance.osis.schema import domain
from appliance.tasklets import Engine

from .conftest import eventually


def samples_of(store, jid) -> dict:
    """The stored samples of one agent by (metric, labels)."""
    return {(s.obj.metric, tuple(sorted(s.obj.labels.items()))): s.obj
            for s in store.query("monitorsample", [("agent", "=", jid)])}


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def scheduling(scheduler: Scheduler):
    task = asyncio.ensure_future(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tasklets(tmp_path, builtin: bool = True, **sources) -> Engine:
    """An engine of these tasklets (name -> source), after the built-in ones if `builtin`."""
    folder = tmp_path / "tasklets"
    folder.mkdir(exist_ok=True)
    for name, source in sources.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    engine = Engine.load([folder], builtin=builtin, timeout=20)
    assert engine.errors == []
    return engine


async def test_samples_of_real_agents_land_in_osis_one_per_series(fleet, builtin_engine, store):
    a = await fleet.add("a", builtin_engine)
    b = await fleet.add("b", builtin_engine)
    scheduler = Scheduler(fleet.send, fleet.online, lambda: store, interval=1, timeout=15)
    async with scheduling(scheduler):
        await eventually(lambda: all(samples_of(store, jid) for jid in (a, b)))
        first = samples_of(store, a)[("node_load1", ())].timestamp
        await eventually(lambda: samples_of(store, a)[("node_load1", ())].timestamp > first)
    for jid in (a, b):
        got = samples_of(store, jid)
        memory = got[("node_memory_MemTotal_bytes", ())]
        assert memory.value == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert got[("node_filesystem_size_bytes", (("mountpoint", "/"),))].value == \
            os.statvfs("/").f_blocks * os.statvfs("/").f_frsize
        assert {"node_load1", "node_load5", "node_load15"} <= {metric for metric, _ in got}
        assert len(got) == 11  # polled again and again: replaced, never added
    assert len(store.scan("monitorsample")) == 22


async def test_an_agent_that_goes_offline_is_left_alone_and_keeps_its_samples(fleet, builtin_engine, store):
    stays = await fleet.add("stays", builtin_engine)
    goes = await fleet.add("goes", builtin_engine)
    scheduler = Scheduler(fleet.send, fleet.online, lambda: store, interval=1, timeout=15)
    async with scheduling(scheduler):
        await eventually(lambda: samples_of(store, goes) and samples_of(store, stays))
        await fleet.remove(goes)
        await eventually(lambda: goes not in scheduler.plan.next)
        dropped, sent_before = time.time(), len(fleet.sent)
        left = {key: s.timestamp for key, s in samples_of(store, goes).items()}
        await eventually(lambda: samples_of(store, stays)[("node_load1", ())].timestamp > dropped + 2)
    assert goes not in [jid for jid, _ in fleet.sent[sent_before:]]
    assert stays in [jid for jid, _ in fleet.sent[sent_before:]]
    assert {key: s.timestamp for key, s in samples_of(store, goes).items()} == left  # kept, as they were
    assert max(left.values()) <= dropped


GARBAGE = {
    "bad": """
        TAGS = ("monitor",)
        def main(params, ctx):
            return [{"metric": "good_one", "value": 7, "labels": {"kind": "fine"}},
                    {"metric": "bad name", "value": 1},
                    {"metric": "not_a_number", "value": "12"},
                    {"metric": "spoofed", "value": 1, "labels": {"agent": "someone@else"}},
                    {"metric": "appliance_component_up", "value": 1},
                    "junk"]
    """,
    "not_a_list": """
        TAGS = ("monitor",)
        def main(params, ctx):
            return {"metric": "lonely", "value": 1}
    """,
    "broken": """
        TAGS = ("monitor",)
        def main(params, ctx):
            raise RuntimeError("the sensor is unplugged")
    """,
}


async def test_garbage_is_counted_and_logged_never_stored(fleet, store, tmp_path, caplog):
    jid = await fleet.add("garbage", tasklets(tmp_path, **GARBAGE))
    scheduler = Scheduler(fleet.send, fleet.online, lambda: store, interval=60, timeout=15)
    before = {name: counter(name) for name in ("appliance_monitor_samples_rejected_total",
                                               "appliance_monitor_tasklets_failed_total")}
    with caplog.at_level(logging.WARNING, "appliance.monitoring"):
        await scheduler.poll(jid)
    assert counter("appliance_monitor_samples_rejected_total") - before["appliance_monitor_samples_rejected_total"] == 6
    assert counter("appliance_monitor_tasklets_failed_total") - before["appliance_monitor_tasklets_failed_total"] == 1
    stored = samples_of(store, jid)
    assert stored[("good_one", (("kind", "fine"),))].value == 7.0
    assert not {"bad name", "not_a_number", "spoofed", "appliance_component_up", "lonely"} & {m for m, _ in stored}
    assert ("node_load1", ()) in stored  # the built-in beside them still counts
    garbage = [r.fields for r in caplog.records if r.getMessage() == "monitor.garbage"]
    assert {(g["agent"], g["tasklet"]) for g in garbage} == {(jid, "bad"), (jid, "not_a_list")}
    assert any("not a Prometheus metric name" in g["reason"] for g in garbage)
    [failed] = [r.fields for r in caplog.records if r.getMessage() == "monitor.tasklet_failed"]
    assert failed["tasklet"] == "broken" and "the sensor is unplugged" in failed["error"]


SLOW = {"slow": """
    import time
    TAGS = ("monitor",)
    def main(params, ctx):
        time.sleep(1.5)
        return [{"metric": "slow_done", "value": 1}]
"""}


async def test_polls_are_bounded_in_flight_and_one_per_agent(fleet, store, tmp_path):
    engine = tasklets(tmp_path, builtin=False, **SLOW)
    agents = [await fleet.add(f"slow{i}", engine) for i in range(4)]
    in_flight, per_agent, peak, done = 0, {}, {"all": 0}, []

    async def counting_send(jid, job, timeout):
        nonlocal in_flight
        in_flight += 1
        per_agent[jid] = per_agent.get(jid, 0) + 1
        peak["all"], peak[jid] = max(peak["all"], in_flight), max(peak.get(jid, 0), per_agent[jid])
        try:
            return await fleet.send(jid, job, timeout)
        finally:
            in_flight -= 1
            per_agent[jid] -= 1
            done.append(jid)

    skipped = counter("appliance_monitor_slots_skipped_total")
    scheduler = Scheduler(counting_send, fleet.online, lambda: store, interval=1, timeout=10, concurrency=2)
    async with scheduling(scheduler):
        await eventually(lambda: all(done.count(jid) >= 2 for jid in agents), timeout=60)
    assert peak.pop("all") == 2
    assert set(peak.values()) == {1}
    assert counter("appliance_monitor_slots_skipped_total") > skipped
    assert all(samples_of(store, jid)[("slow_done", ())].value == 1.0 for jid in agents)


async def test_samples_not_refreshed_within_retention_are_deleted(store):
    now = time.time()
    for guid, taken in (("ms-old", now - 100), ("ms-fresh", now)):
        store.put(domain.MonitorSample(guid=guid, agent="gone@rack.test", metric="node_load1",
                                       value=1.0, timestamp=taken))
    expired = counter("appliance_monitor_samples_expired_total")
    scheduler = Scheduler(None, set, lambda: store, interval=1, retention=50)
    async with scheduling(scheduler):
        await eventually(lambda: len(store.scan("monitorsample")) == 1)
    assert [s.obj.guid for s in store.scan("monitorsample")] == ["ms-fresh"]
    assert counter("appliance_monitor_samples_expired_total") - expired == 1
