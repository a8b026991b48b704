"""The monitoring scheduler: monitor tasklets on every online agent, every `interval` s.

`Scheduler(send, online, store, interval=…)` polls the agents that `online()` names (bare
JIDs), each at its own phase of the interval (monitoring.plan), by sending it a tasklet
job with tags ["monitor"] through `send(jid, job, timeout) -> JobResult` — the
controller's `send_job`, or any function of that shape (tests build one on
agent.dispatch.send_job). At most one poll per agent is outstanding, and at most
`concurrency` are in flight in all.

Samples (monitoring.samples) are stored in OSIS, one MonitorSample per series, replaced
by each newer value; an agent that goes offline is no longer polled and its samples
keep the time they were taken. Samples not refreshed for `retention` seconds are
deleted, so the store holds at most (series per agent × agents seen within
`retention`). Garbage from a tasklet, failed tasklets and polls that gave no result are
counted (appliance_monitor_* metrics) and logged, and never stop the loop.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import Counter, Gauge

from agent.dispatch import JobError
from agent.protocol import JobResult, TaskletJob
from appliance.log import fields
from appliance.monitoring.plan import Plan
from appliance.monitoring.samples import parse_result
from appliance.osis.kv import Conflict, StoreError
from appliance.osis.store import NotFound, ObjectStore

log = logging.getLogger("appliance.monitoring")

TAG = "monitor"
SLACK = 5.0  # seconds the round trip may take beyond the job's own timeout
TICK = 1.0  # seconds between two looks at who is online
PRUNE_BATCH = 1000

RUNS = Counter("appliance_monitor_runs", "Monitoring polls, by outcome (ok, failed, timed_out: the "
               "job's status; error: no result)", ["outcome"])
STORED = Counter("appliance_monitor_samples_stored", "Samples stored")
REJECTED = Counter("appliance_monitor_samples_rejected", "Samples refused as malformed (logged)")
FAILED = Counter("appliance_monitor_tasklets_failed", "Monitor tasklets that failed or timed out")
SKIPPED = Counter("appliance_monitor_slots_skipped",
                  "Polls skipped: the agent's previous one was still outstanding")
EXPIRED = Counter("appliance_monitor_samples_expired", "Samples deleted after `retention` without an update")
IN_FLIGHT = Gauge("appliance_monitor_in_flight", "Monitoring jobs sent and not answered yet")
AGENTS = Gauge("appliance_monitor_agents", "Agents online, being polled")

Send = Callable[[str, TaskletJob, float], Awaitable[JobResult]]


class Scheduler:
    """Polls online agents with their monitor tasklets; `run()` until cancelled."""

    def __init__(self, send: Send, online: Callable[[], Iterable[str]], store: Callable[[], ObjectStore],
                 *, interval: float, timeout: float = 30, concurrency: int = 50,
                 retention: float = 3600, clock: Callable[[], float] = time.time):
        self.send, self.online, self.store, self.clock = send, online, store, clock
        self.timeout, self.retention = timeout, retention
        self.plan = Plan(interval)
        self.slots = asyncio.Semaphore(concurrency)
        self.running: dict[str, asyncio.Task] = {}
        self._next_prune = 0.0

    async def run(self) -> None:
        try:
            while True:
                now = self.clock()
                for jid in self.plan.update(self._online(), now):
                    log.info("monitor.agent_gone", extra=fields(agent=jid))
                AGENTS.set(len(self.plan.next))
                start, skipped = self.plan.due(now, self.running)
                SKIPPED.inc(skipped)
                for jid in start:
                    self._start(jid)
                if now >= self._next_prune:
                    self._next_prune = now + self.plan.interval
                    await self._expire(now - self.retention)
                await asyncio.sleep(self._pause())
        finally:
            tasks = list(self.running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            AGENTS.set(0)

    def _online(self) -> set[str]:
        try:
            return set(self.online())
        except Exception as exc:  # the controller went away: nobody is online
            log.warning("monitor.online_unknown", extra=fields(error=exc))
            return set()

    def _pause(self) -> float:
        due = self.plan.next_due()
        wait = TICK if due is None else min(TICK, due - self.clock())
        return max(wait, 0.01)

    def _start(self, jid: str) -> None:
        task = asyncio.ensure_future(self._scheduled(jid))
        self.running[jid] = task
        task.add_done_callback(lambda _: self.running.pop(jid, None))

    async def _scheduled(self, jid: str) -> None:
        async with self.slots:
            if jid in self.plan.next:  # else it went offline while this poll waited for a slot
                await self.poll(jid)

    async def poll(self, jid: str) -> None:
        """Run the monitor tasklets on `jid` once and store what they gave."""
        IN_FLIGHT.inc()
        try:
            result = await self._ask(jid)
        finally:
            IN_FLIGHT.dec()
        if result is None:
            return
        RUNS.labels(result.status).inc()
        parsed = parse_result(jid, result.value, self.clock())
        for tasklet, reason in parsed.rejected:
            log.warning("monitor.garbage", extra=fields(agent=jid, tasklet=tasklet, reason=reason))
        for tasklet, status, error in parsed.failed:
            log.warning("monitor.tasklet_failed", extra=fields(agent=jid, tasklet=tasklet, status=status,
                                                                error=error))
        REJECTED.inc(len(parsed.rejected))
        FAILED.inc(len(parsed.failed))
        if parsed.samples:
            try:
                await _in_thread(self._save, parsed.samples)
            except StoreError as exc:
                log.warning("monitor.store_unavailable", extra=fields(agent=jid, error=exc))
                return
            STORED.inc(len(parsed.samples))

    async def _ask(self, jid: str) -> JobResult | None:
        job = TaskletJob(f"mon-{secrets.token_hex(8)}", self.timeout, (TAG,), {})
        try:
            return await self.send(jid, job, self.timeout + SLACK)
        except JobError as exc:
            RUNS.labels("error").inc()
            log.warning("monitor.no_result", extra=fields(agent=jid, condition=exc.condition, text=exc.text))
        except Exception:  # a bug in the send path: this poll is lost, the loop goes on
            RUNS.labels("error").inc()
            log.exception("monitor.send_failed", extra=fields(agent=jid))
        return None

    def _save(self, samples: list) -> None:
        store = self.store()
        for sample in samples:
            store.put(sample)

    async def _expire(self, before: float) -> None:
        try:
            count = await _in_thread(self._delete_older, before)
        except StoreError as exc:
            log.warning("monitor.store_unavailable", extra=fields(error=exc))
            return
        if count:
            EXPIRED.inc(count)
            log.info("monitor.expired", extra=fields(samples=count, before=round(before, 3)))

    def _delete_older(self, before: float) -> int:
        store, count = self.store(), 0
        for stored in store.query("monitorsample", [("timestamp", "<", before)], limit=PRUNE_BATCH):
            try:  # only if not refreshed since it was read
                store.delete("monitorsample", stored.obj.guid, expect=stored.revision)
                count += 1
            except (Conflict, NotFound):
                pass
        return count


async def _in_thread(fn, *args):
    """fn(*args) in a thread; cancelling waits for it to end, so that no write to the store
    outlives the scheduler (each is a few puts or deletes)."""
    call = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait({call})
        if not call.cancelled():
            call.exception()  # retrieved: it ends with the task
        raise
