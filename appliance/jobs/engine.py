"""The workflow engine: the asyncio shell around appliance.jobs.core and .flow.

`Engine(store, controller, me, policy)` — `store` and `controller` are callables giving
the running ObjectStore and the appliance.fabric.controller.Controller (or None while it
is not connected); `me` is the controller's bare JID. `await engine.run()` until cancelled.

- It keeps every live job (QUEUED, DISPATCHED, RUNNING; workflow runs) in memory, loaded
  from OSIS at start and then followed through the store's change feed, so that jobs
  written by anyone — the app server, `appliance jobs` in another process, a workflow —
  are seen within a moment. A job another appliance's engine has sent (`owner`) is left
  to it.
- Whenever something about a job changes — its agent's presence, a result, an error, a
  progress message, a cancel request, the clock (a tick every `tick` seconds) — core
  says what to do; the change is written to OSIS first (compare-and-set on the job's
  revision: a job changed meanwhile is read again and decided again), then the job is
  sent or its agent asked to stop it. Progress output goes to the job's log, written at
  most once a second per job. Writes go through a group commit (appliance.jobs.writer):
  those made while one is in flight share one transaction.
- After a restart nothing is lost and nothing runs twice: a job still DISPATCHED or
  RUNNING is sent again, with the same run id, once its agent is online; the agent
  joins the run or answers with its recorded result (agent.journal).
- A workflow run advances (flow.advance) when it starts, when one of its steps ends, and
  after a restart; "local" steps run here, in a thread.
"""

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.connection import wait_event
from agent.dispatch import JobError
from agent.protocol import JobResult, Progress, ProtocolError
from appliance.jobs import core, flow, submit
from appliance.jobs.workflows import WORKFLOWS
from appliance.jobs.writer import Writer
from appliance.log import fields
from appliance.osis.kv import NEW, Compacted, Conflict, StoreError
from appliance.osis.schema import domain, object_type

log = logging.getLogger("appliance.jobs")
S = domain.JobState
FLUSH = 1.0  # seconds between two writes of a job's streamed output


@dataclass
class Tracked:
    """A live job: the latest Job and revision, and what is under way for it."""

    job: object
    revision: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sending: asyncio.Task | None = None
    outcome: JobResult | JobError | None = None
    progressed: bool = False
    cancel_sent: bool = False
    output: list[str] = field(default_factory=list)
    flushed: float = 0.0


class Engine:
    """Jobs from OSIS to agents and back; see the module docstring."""

    def __init__(self, store: Callable, controller: Callable, me: str, policy: core.Policy, *,
                 clock: Callable[[], float] = time.time, tick: float = 1.0, workflows=WORKFLOWS):
        self.store, self.controller, self.me, self.policy = store, controller, me, policy
        self.clock, self.tick, self.workflows = clock, tick, workflows
        self.live: dict[str, Tracked] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._bound = None
        self._up: set[str] = set()  # who the bound controller says is online
        self._unbind: list[Callable[[], None]] = []
        self._mine: set[int] = set()  # revisions we wrote: the feed need not read them back
        self.writer = Writer(store, written=self._wrote)

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled."""
        after = await asyncio.to_thread(lambda: self.store().revision())
        await self._load()
        feed = asyncio.create_task(self._follow(after))
        try:
            while True:
                if await wait_event(self._wake, self.tick):
                    dirty, self._dirty = self._dirty, set()
                else:  # a tick: time-outs, retries, output to write
                    dirty = {g for g, tr in self.live.items() if self._due(tr)}
                self._wake.clear()
                if feed.done():
                    feed.result()  # the feed died: a crash, restarted by the supervisor
                self._bind()
                await asyncio.gather(*(self._process(g) for g in dirty if g in self.live))
        finally:
            feed.cancel()
            for tr in self.live.values():
                if tr.sending is not None:
                    tr.sending.cancel()
            for unbind in self._unbind:
                unbind()
            await self.writer.drain()  # no write left running when the store is closed

    def _due(self, tr: Tracked) -> bool:
        """Whether a tick may change anything for the job (not so while it is being sent)."""
        if tr.job.action == "workflow":
            return False
        waiting = tr.sending is not None and not tr.job.cancel_requested and not tr.output
        return not waiting or self.clock() >= core.deadline(tr.job, self.policy)

    def _mark(self, *guids: str) -> None:
        self._dirty.update(guids)
        self._wake.set()

    def _bind(self) -> None:
        ctl = self.controller()
        if ctl is not None and ctl is not self._bound:
            for unbind in self._unbind:
                unbind()
            self._unbind = [ctl.on_presence(self._presence), ctl.on_progress(self._progress)]
            self._bound, self._up = ctl, ctl.online()  # then kept in step by _presence
            self._mark(*self.live)

    def _online(self, jid: str | None) -> bool:
        ctl = self.controller()
        return ctl is not None and ctl is self._bound and jid in self._up

    # --- loading and following the store -------------------------------------------------------

    async def _load(self) -> None:
        found = await asyncio.to_thread(self._live_jobs)
        for stored in found:
            self._track(stored.obj, stored.revision)
        log.info("jobs.loaded", extra=fields(live=len(self.live)))

    def _live_jobs(self) -> list:
        store = self.store()
        return [s for state in core.LIVE for s in store.query("job", [("state", "=", core.name(state))])]

    def _track(self, job, revision: int) -> None:
        mine = job.owner in (None, self.me)
        if job.state in core.TERMINAL or not mine or job.action == "local":
            return
        tr = self.live.get(job.guid)
        if tr is None:
            self.live[job.guid] = Tracked(job, revision)
        elif revision > tr.revision:
            tr.job, tr.revision = job, revision
        self._mark(job.guid)

    async def _follow(self, after: int) -> None:
        prefix = self.store().key_of(object_type("job"), "")
        while True:
            try:
                changes = await asyncio.to_thread(self.store().kv.changes, prefix, after, 1.0)
            except Compacted:
                after = await asyncio.to_thread(lambda: self.store().revision())
                await self._load()
                continue
            await self.writer.settled()  # a change of ours in flight is in _mine once it is back
            deleted: dict[str, bool] = {}  # job -> whether its last change deleted it
            for change in changes:
                after = max(after, change.revision)
                if change.revision not in self._mine:
                    deleted[change.key[len(prefix):].decode()] = change.deleted
            # Forgotten only now: with etcd a batch of ours is one revision for all its jobs.
            self._mine.difference_update(c.revision for c in changes)
            if deleted:  # read back in one thread call, not one per change
                wanted = [g for g, d in deleted.items() if not d]
                found = await asyncio.to_thread(self.store().get_many, "job", wanted)
                for guid in deleted:
                    self._seen(guid, found.get(guid))

    def _seen(self, guid: str, stored) -> None:
        if stored is None:
            tr = self.live.pop(guid, None)
            if tr is not None and tr.sending is not None:
                tr.sending.cancel()
            return
        job = stored.obj
        self._track(job, stored.revision)
        if job.workflow and job.workflow != job.guid and job.state in core.TERMINAL:
            self._mark(job.workflow)  # a step ended: its run goes on

    # --- events from the controller ------------------------------------------------------------

    def _presence(self, jid: str, online: bool) -> None:
        (self._up.add if online else self._up.discard)(jid)
        for guid, tr in self.live.items():
            if tr.job.jid == jid:
                if not online and tr.sending is not None:
                    tr.sending.cancel()  # sent again when it is back
                self._mark(guid)

    def _progress(self, jid: str, progress: Progress) -> None:
        run = core.split_wire_id(progress.id)
        tr = self.live.get(run[0]) if run else None
        if tr is None or tr.job.jid != jid or run[1] != max(tr.job.attempts or 0, 1):
            return  # not a run of ours (or an old one)
        if progress.output:
            tr.output.append(progress.output)
        tr.progressed = True
        self._mark(tr.job.guid)

    # --- deciding and doing --------------------------------------------------------------------

    async def _process(self, guid: str) -> None:
        tr = self.live[guid]
        async with tr.lock:
            try:
                if tr.job.action == "workflow":
                    await self._advance(tr)
                else:
                    await self._step(tr)
            except StoreError as exc:
                log.warning("jobs.store_unavailable", extra=fields(job=guid, error=exc))
                return
            except Exception:  # a bug: this job waits for the next look, the others go on
                log.error("jobs.bug", exc_info=True, extra=fields(job=guid))
                return
            if tr.job.state in core.TERMINAL:
                self._finished(tr)

    async def _step(self, tr: Tracked) -> None:
        now = self.clock()
        if tr.outcome is not None:
            outcome = tr.outcome
            plan = (core.on_result(tr.job, outcome, now, self.policy) if isinstance(outcome, JobResult)
                    else core.on_error(tr.job, outcome.condition, outcome.text, now, self.policy))
            if not await self._save(tr, plan):
                return
            tr.outcome = None
        if tr.progressed:
            tr.progressed = False
            await self._save(tr, core.on_progress(tr.job, now))
            if tr.outcome is not None:  # the result came meanwhile (and marked the job): not "send again"
                return
        plan = core.decide(tr.job, now, self.policy, online=self._online(tr.job.jid),
                           sending=tr.sending is not None, cancel_sent=tr.cancel_sent)
        flush = bool(tr.output) and (now - tr.flushed >= FLUSH or tr.job.state in core.TERMINAL)
        if (plan.writes() or flush) and not await self._save(tr, plan):
            return
        if plan.send:
            tr.cancel_sent = False
            tr.sending = asyncio.create_task(self._deliver(tr))
        if plan.cancel:
            tr.cancel_sent = True
            asyncio.create_task(self._tell_cancel(tr.job.jid, core.wire_id(tr.job)))

    async def _save(self, tr: Tracked, plan: core.Plan) -> bool:
        """Write the plan's changes (and pending output); False if the job changed meanwhile."""
        job = copy.deepcopy(tr.job)
        now = self.clock()
        core.apply(job, plan, now)
        output, tr.output = "".join(tr.output), []
        if output:
            job.log = core.append_log(job.log, output)
        job.owner = self.me
        try:
            revision = await self.writer.put(job, tr.revision)
        except Conflict:
            if output:
                tr.output.insert(0, output)
            fresh = await asyncio.to_thread(self.store().get, "job", job.guid)
            tr.job, tr.revision = fresh.obj, fresh.revision
            self._mark(job.guid)
            return False
        tr.job, tr.revision, tr.flushed = job, revision, now
        return True

    def _wrote(self, revision: int) -> None:
        """A revision the writer stored for us: the feed need not read it back."""
        if len(self._mine) > 100_000:
            self._mine.clear()  # left by a feed that skipped ahead: only costs reads
        self._mine.add(revision)

    async def _deliver(self, tr: Tracked) -> None:
        job = tr.job
        try:
            wire = core.wire_job(job)
            timeout = max(1.0, core.deadline(job, self.policy) - self.clock())
            ctl = self.controller()
            if ctl is None:
                raise JobError("offline", "the controller is not connected")
            tr.outcome = await ctl.send_job(job.jid, wire, timeout)
        except JobError as exc:
            tr.outcome = exc
        except (ProtocolError, ValueError) as exc:
            tr.outcome = JobError("bad-request", getattr(exc, "reason", str(exc)))
        finally:
            if tr.sending is asyncio.current_task():
                tr.sending = None
            self._mark(job.guid)

    async def _tell_cancel(self, jid: str, wire_id: str) -> None:
        ctl = self.controller()
        try:
            if ctl is not None:
                await ctl.cancel_job(jid, wire_id)
        except JobError as exc:
            log.info("jobs.cancel_not_delivered", extra=fields(job=wire_id, error=exc))

    def _finished(self, tr: Tracked) -> None:
        self.live.pop(tr.job.guid, None)
        if tr.sending is not None:
            tr.sending.cancel()
        job = tr.job
        log.info("jobs.finished", extra=fields(job=job.guid, state=core.name(job.state), error=job.error))
        if job.workflow and job.workflow != job.guid:
            self._mark(job.workflow)

    # --- workflows -----------------------------------------------------------------------------

    async def _advance(self, tr: Tracked) -> None:
        run = tr.job
        wf = self.workflows.get((run.tags or [""])[0])
        if wf is None:
            await self._save(tr, core.Plan({"state": S.FAILED, "finished": self.clock(),
                                            "error": f"no workflow {run.tags}"}, ["unknown workflow"]))
            return
        params = json.loads(run.params_json or "{}")
        ctx = flow.Context(run.agent, params.get("machine"), params)
        if run.state == S.QUEUED:
            if wf.on_start:
                await asyncio.to_thread(wf.on_start, self.store(), ctx)
            if not await self._save(tr, core.Plan({"state": S.RUNNING, "started": self.clock()},
                                                   [f"workflow {wf.name} started"])):
                return
        for _ in range(len(wf.steps) + 1):  # each pass starts a step or ends the run
            if tr.job.state != S.RUNNING:
                return
            steps = await asyncio.to_thread(self._steps, run.guid)
            if tr.job.cancel_requested:
                await self._cancel_steps(steps)
            now_ctx = flow.Context(ctx.agent, ctx.machine, ctx.params)  # results filled by advance
            decision = flow.advance(wf, now_ctx, steps)
            if decision is None:
                return
            if isinstance(decision, flow.Finish):
                await self._end_run(tr, wf, ctx, decision)
                return
            await asyncio.to_thread(self._start_step, run, decision, now_ctx)

    def _steps(self, run_guid: str) -> dict:
        found = self.store().query("job", [("workflow", "=", run_guid)])
        return {i: s.obj for s in found if (i := flow.step_index(run_guid, s.obj.guid)) is not None}

    async def _cancel_steps(self, steps: dict) -> None:
        for job in steps.values():
            if job.state not in core.TERMINAL:
                await asyncio.to_thread(submit.cancel, self.store(), job.guid)

    def _start_step(self, run, decision: flow.Start, ctx: flow.Context) -> None:
        """Make the step's job (for a local step: run it and make it finished)."""
        store, step, what = self.store(), decision.step, decision.run
        guid, now = flow.step_guid(run.guid, decision.index), self.clock()
        agent = domain.Agent(guid=run.agent, jid=run.jid)
        if isinstance(what, flow.Skip):
            job = submit.new_job(agent, "local", guid=guid, workflow=run.guid, step=step.name, now=now)
            job.state, job.finished, job.output = S.SKIPPED, now, what.why
        elif what.action == "local":
            job = submit.new_job(agent, "local", guid=guid, workflow=run.guid, step=step.name, now=now)
            job.started = now
            try:
                job.output, job.state = step.local(store, ctx), S.SUCCEEDED
            except Exception as exc:
                log.error("jobs.local_step_failed", exc_info=True, extra=fields(job=guid))
                job.output, job.state, job.error = f"{type(exc).__name__}: {exc}\n", S.FAILED, str(exc)
            job.finished = self.clock()
        else:
            job = submit.new_job(agent, what.action, tags=what.tags, params=what.params, script=what.script,
                                 timeout=what.timeout, workflow=run.guid, step=step.name, guid=guid, now=now)
        try:
            store.put(job, expect=NEW)
        except Conflict:
            pass  # made before a restart: the next look finds it

    async def _end_run(self, tr: Tracked, wf, ctx, decision: flow.Finish) -> None:
        if wf.on_end:
            try:
                await asyncio.to_thread(wf.on_end, self.store(), ctx, decision.state, decision.error)
            except StoreError:
                raise
            except Exception:
                log.error("jobs.workflow_end_failed", exc_info=True, extra=fields(job=tr.job.guid))
        note = f"workflow {wf.name}: {core.name(decision.state).lower()}"
        await self._save(tr, core.Plan({"state": decision.state, "finished": self.clock(),
                                        "error": decision.error}, [note + (f": {decision.error}" if
                                                                            decision.error else "")]))
