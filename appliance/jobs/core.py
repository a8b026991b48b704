"""The life of one job, as a pure state machine: Job and event in, a Plan out.

No I/O, no asyncio, no XMPP: the engine (appliance.jobs.engine) holds the Job objects,
asks these functions what to do when something happens, stores the changes, and does
what the Plan says (send the job, tell the agent to stop it). The clock is passed in.

    QUEUED ──(agent online, not before not_before)──> DISPATCHED ──(progress)──> RUNNING
       ^  │                                                │    └──────────────┐
       │  └─(cancel, queue_timeout)─> CANCELLED/TIMED_OUT  └──(result)──> SUCCEEDED, FAILED,
       └──(not delivered: agent offline or busy; a failed run retried)──┘  TIMED_OUT, CANCELLED

- A job is sent when its agent is online. Each deliberate run has a number (`attempts`);
  the id the agent sees is `<guid>.<run>`, and the agent is idempotent on it: sending
  the same run again (after the engine restarted, after the agent was offline) joins it
  or returns its recorded result, and never runs it twice. A retry is a new run.
- Not delivered (`offline`, `service-unavailable`, `resource-constraint`): back to
  QUEUED, same run; a busy agent is tried again after `retry_delay`.
- No result by `dispatched + timeout + grace`: TIMED_OUT (the agent kills a job at its
  timeout and answers, so silence past the grace means it is gone).
- A QUEUED job whose agent was not online within `queue_timeout` of its creation: TIMED_OUT.
- A failed run is run again while it has had fewer than `attempts` runs, after
  `retry_delay` doubling per run. Other XMPP errors (forbidden, bad-request,
  feature-not-implemented, a malformed result) fail the job at once.
- Cancel (`cancel_requested`): a QUEUED job is CANCELLED at once; a sent one is asked to
  stop and ends with the agent's "cancelled" result; if its agent is offline it is
  CANCELLED at once (and stops when the agent hears of it).
"""

import json
import time
from dataclasses import dataclass, field

from agent.protocol import MAX_TIMEOUT, JobResult, ScriptJob, TaskletJob
from agent.protocol import Job as WireJob
from appliance.osis.schema import domain

S = domain.JobState
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.SKIPPED})
LIVE = (S.QUEUED, S.DISPATCHED, S.RUNNING)
AGENT_ACTIONS = ("tasklet", "script")
UNDELIVERED = frozenset({"offline", "service-unavailable", "recipient-unavailable", "resource-constraint"})
LOG_LIMIT = 64 * 1024  # characters of log kept (the tail)
MAX_RETRY_DELAY = 3600.0
_RESULT_STATE = {"ok": S.SUCCEEDED, "failed": S.FAILED, "timed_out": S.TIMED_OUT, "cancelled": S.CANCELLED}


@dataclass(frozen=True)
class Policy:
    """The [jobs] settings the state machine needs."""

    attempts: int = 1
    retry_delay: float = 5.0
    queue_timeout: float = 86400.0
    grace: float = 30.0


@dataclass
class Plan:
    """What to do: fields to change (and log lines to add) on the Job, then the actions."""

    changes: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    send: bool = False
    cancel: bool = False

    def writes(self) -> bool:
        return bool(self.changes or self.log)


def name(state: int) -> str:
    return S._VALUES_TO_NAMES.get(state, str(state))


def wire_id(job) -> str:
    """The id the agent sees for the job's current run."""
    return f"{job.guid}.{max(job.attempts or 0, 1)}"


def split_wire_id(text: str) -> tuple[str, int] | None:
    """(guid, run) of a wire id, None if it is not one of ours."""
    guid, _, run = text.rpartition(".")
    return (guid, int(run)) if guid and run.isdigit() else None


def wire_job(job) -> WireJob:
    """The agent.protocol job for the job's current run (ProtocolError if it breaks a rule)."""
    params = json.loads(job.params_json or "{}")
    timeout = min(float(job.timeout or 1), MAX_TIMEOUT)
    if job.action == "script":
        return ScriptJob(wire_id(job), timeout, params.get("script", ""))
    return TaskletJob(wire_id(job), timeout, tuple(job.tags or ()), params)


def deadline(job, policy: Policy) -> float:
    """When a sent job that gave no result is given up (TIMED_OUT)."""
    return (job.dispatched or job.created or 0.0) + float(job.timeout or 0) + policy.grace


def retry_delay(policy: Policy, run: int) -> float:
    """Seconds before run `run + 1`, after run `run` failed: doubling from retry_delay."""
    return min(policy.retry_delay * 2 ** max(run - 1, 0), MAX_RETRY_DELAY)


def _end(state: int, now: float, error: str | None, note: str, **more) -> Plan:
    return Plan({"state": state, "finished": now, "error": error, **more}, [note])


def _silent(job, now: float, policy: Policy) -> Plan:
    error = f"no result within its timeout ({job.timeout} s) and {policy.grace:g} s more"
    return _end(S.TIMED_OUT, now, error, "no result from the agent: timed out")


def decide(job, now: float, policy: Policy, *, online: bool, sending: bool,
           cancel_sent: bool = False) -> Plan:
    """What to do with a live agent job now (run whenever anything about it changes)."""
    if job.state in TERMINAL:
        return Plan()
    if job.cancel_requested:
        if job.state == S.QUEUED:
            return _end(S.CANCELLED, now, "cancelled", "cancelled before it was sent")
        if not online:
            return _end(S.CANCELLED, now, "cancelled", "cancelled while its agent was offline")
        if not cancel_sent:
            return Plan(log=["asking the agent to stop it"], cancel=True)
    if job.state == S.QUEUED:
        if policy.queue_timeout and now >= (job.created or now) + policy.queue_timeout:
            return _end(S.TIMED_OUT, now, f"its agent was not online within {policy.queue_timeout:g} s",
                        "timed out in the queue")
        if online and (job.not_before or 0) <= now:
            run = max(job.attempts or 0, 1)
            return Plan({"state": S.DISPATCHED, "dispatched": now, "attempts": run, "not_before": None},
                        [f"sent to {job.jid} (run {run})"], send=True)
        return Plan()
    if now >= deadline(job, policy):
        plan = _silent(job, now, policy)
        plan.cancel = online
        return plan
    if online and not sending:
        return Plan(log=[f"sent again to {job.jid} to learn how run {wire_id(job)} went"], send=True)
    return Plan()


def on_progress(job, now: float) -> Plan:
    """The agent said the job runs (a progress message of its current run)."""
    if job.state in (S.QUEUED, S.DISPATCHED):
        return Plan({"state": S.RUNNING, "started": job.started or now}, ["running"])
    return Plan()


def on_result(job, result: JobResult, now: float, policy: Policy) -> Plan:
    """The agent's result for the job's current run."""
    if job.state in TERMINAL:
        return Plan()
    state = _RESULT_STATE[result.status]
    error = _error_of(job, result, state)
    changes = {"exit_status": result.exit, "output": result.output, "finished": now,
               "result_json": None if result.value is None else json.dumps(result.value),
               "started": job.started or job.dispatched or now, "error": error}
    run = max(job.attempts or 0, 1)
    if state == S.FAILED and run < policy.attempts and not job.cancel_requested:
        delay = retry_delay(policy, run)
        changes.update(state=S.QUEUED, attempts=run + 1, not_before=now + delay, finished=None)
        return Plan(changes, [f"run {run} failed ({error}); run {run + 1} in {delay:g} s"])
    return Plan({**changes, "state": state}, [name(state).lower().replace("_", " ")
                                              + (f": {error}" if error else "")])


def on_error(job, condition: str, text: str, now: float, policy: Policy) -> Plan:
    """Sending the job's current run failed with `condition` (agent.dispatch.JobError)."""
    if job.state in TERMINAL:
        return Plan()
    if condition == "timeout":  # the send waited until the deadline
        return _silent(job, now, policy)
    if condition in UNDELIVERED:  # a busy agent: retry_delay; else as soon as it is online again
        delay = policy.retry_delay if condition == "resource-constraint" else min(1.0, policy.retry_delay)
        note = f"not delivered ({condition}: {text}); again in {delay:g} s or once it is online"
        return Plan({"state": S.QUEUED, "not_before": now + delay}, [note])
    error = f"{condition}: {text}" if text else condition
    return Plan({"state": S.FAILED, "finished": now, "error": error}, [f"failed: {error}"])


def _error_of(job, result: JobResult, state: int) -> str | None:
    if state == S.SUCCEEDED:
        return None
    if state == S.CANCELLED:
        return "cancelled"
    if state == S.TIMED_OUT:
        return f"ran past its timeout ({job.timeout} s)"
    if result.exit is not None:
        return f"exit status {result.exit}"
    failed = [r for r in result.value or () if isinstance(r, dict) and r.get("status") != "ok"]
    if failed:
        return f"tasklet {failed[0].get('name')}: {failed[0].get('status')}"
    lines = result.output.strip().splitlines()
    return lines[-1][:200] if lines else "failed"


def apply(job, plan: Plan, now: float) -> None:
    """Make the plan's changes on `job` (in place), its notes appended to the log."""
    for key, value in plan.changes.items():
        setattr(job, key, value)
    if plan.log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        job.log = append_log(job.log, "".join(f"[{stamp} engine] {line}\n" for line in plan.log))


def append_log(log: str | None, text: str, limit: int = LOG_LIMIT) -> str:
    """`text` after `log`, keeping the last `limit` characters."""
    joined = (log or "") + text
    if len(joined) <= limit:
        return joined
    cut = joined[len(joined) - limit:]
    return "[... earlier log cut ...]\n" + cut[cut.find("\n") + 1:]
