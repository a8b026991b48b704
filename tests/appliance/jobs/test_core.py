"""The job state machine (appliance.jobs.core), as tables: a job and an event in, a plan out."""

import pytest

from agent.protocol import JobResult, ScriptJob, TaskletJob
from appliance.jobs import core
from appliance.jobs.core import Plan, Policy
from appliance.osis.schema import domain

S = domain.JobState
POLICY = Policy(attempts=3, retry_delay=5, queue_timeout=600, grace=30)
NOW = 10_000.0


def job(state=S.QUEUED, **kw):
    base = {"guid": "j1", "agent": "a1", "jid": "n1@rack.test", "action": "script",
            "params_json": '{"script": "true"}', "timeout": 60, "created": NOW - 10, "state": state}
    return domain.Job(**{**base, **kw})


DECIDE = {
    # name: (job, online, sending, cancel_sent) -> (state after, send, cancel)
    "queued, agent offline: wait": (job(), False, False, False, None, False, False),
    "queued, agent online: send run 1": (job(), True, False, False, S.DISPATCHED, True, False),
    "queued, retry not due yet": (job(not_before=NOW + 1), True, False, False, None, False, False),
    "queued, retry due": (job(not_before=NOW - 1, attempts=2), True, False, False, S.DISPATCHED, True, False),
    "queued too long": (job(created=NOW - 601), False, False, False, S.TIMED_OUT, False, False),
    "dispatched and sending: wait": (job(S.DISPATCHED, dispatched=NOW - 5), True, True, False, None, False, False),
    "dispatched, nothing pending (restart): send again": (
        job(S.RUNNING, dispatched=NOW - 5), True, False, False, None, True, False),
    "running, agent offline: wait": (job(S.RUNNING, dispatched=NOW - 5), False, False, False, None, False, False),
    "silent past timeout + grace": (job(S.RUNNING, dispatched=NOW - 91), True, True, False, S.TIMED_OUT, False, True),
    "silent past the deadline, agent offline": (
        job(S.DISPATCHED, dispatched=NOW - 91), False, False, False, S.TIMED_OUT, False, False),
    "cancel while queued": (job(cancel_requested=True), True, False, False, S.CANCELLED, False, False),
    "cancel while running: ask the agent": (
        job(S.RUNNING, dispatched=NOW - 5, cancel_requested=True), True, True, False, None, False, True),
    "cancel asked already: wait for its answer": (
        job(S.RUNNING, dispatched=NOW - 5, cancel_requested=True), True, True, True, None, False, False),
    "cancel, agent offline: cancelled now": (
        job(S.RUNNING, dispatched=NOW - 5, cancel_requested=True), False, False, False, S.CANCELLED, False, False),
    "finished: nothing": (job(S.SUCCEEDED), True, False, False, None, False, False),
}


@pytest.mark.parametrize("case", DECIDE, ids=str)
def test_decide(case):
    j, online, sending, cancel_sent, state, send, cancel = DECIDE[case]
    plan = core.decide(j, NOW, POLICY, online=online, sending=sending, cancel_sent=cancel_sent)
    assert (plan.changes.get("state"), plan.send, plan.cancel) == (state, send, cancel)


def test_sending_a_queued_job_records_when_and_which_run():
    plan = core.decide(job(attempts=2, not_before=NOW - 1), NOW, POLICY, online=True, sending=False)
    assert plan.changes == {"state": S.DISPATCHED, "dispatched": NOW, "attempts": 2, "not_before": None}


RESULTS = {
    # name: (result, attempts allowed, attempts so far) -> (state, attempts after, error)
    "ok": (JobResult("j1.1", "ok", 0, None, "hi\n"), 3, 1, S.SUCCEEDED, 1, None),
    "script failed, retried": (JobResult("j1.1", "failed", 2), 3, 1, S.QUEUED, 2, "exit status 2"),
    "script failed, last run": (JobResult("j1.3", "failed", 2), 3, 3, S.FAILED, 3, "exit status 2"),
    "failed, no retries": (JobResult("j1.1", "failed", 1), 1, 1, S.FAILED, 1, "exit status 1"),
    "tasklet failed": (JobResult("j1.1", "failed", None, [{"name": "facts", "status": "failed"}]), 1, 1,
                       S.FAILED, 1, "tasklet facts: failed"),
    "timed out on the agent": (JobResult("j1.1", "timed_out"), 3, 1, S.TIMED_OUT, 1, "ran past its timeout (60 s)"),
    "cancelled": (JobResult("j1.1", "cancelled"), 3, 1, S.CANCELLED, 1, "cancelled"),
}


@pytest.mark.parametrize("case", RESULTS, ids=str)
def test_on_result(case):
    result, allowed, attempts, state, attempts_after, error = RESULTS[case]
    j = job(S.RUNNING, attempts=attempts, dispatched=NOW - 5)
    plan = core.on_result(j, result, NOW, Policy(attempts=allowed, retry_delay=5))
    core.apply(j, plan, NOW)
    assert (j.state, j.attempts, j.error) == (state, attempts_after, error)
    assert j.not_before == (NOW + 5 * 2 ** (attempts - 1) if state == S.QUEUED else None)


def test_a_result_carries_exit_output_and_value():
    j = job(S.DISPATCHED, attempts=1, dispatched=NOW - 2)
    core.apply(j, core.on_result(j, JobResult("j1.1", "ok", None, [{"a": 1}], "out\n"), NOW, POLICY), NOW)
    assert (j.output, j.result_json, j.exit_status, j.started, j.finished) == (
        "out\n", '[{"a": 1}]', None, NOW - 2, NOW)


ERRORS = {
    # condition -> (state, not_before)
    "offline": (S.QUEUED, NOW + 1),
    "service-unavailable": (S.QUEUED, NOW + 1),
    "resource-constraint": (S.QUEUED, NOW + 5),
    "timeout": (S.TIMED_OUT, None),
    "forbidden": (S.FAILED, None),
    "bad-request": (S.FAILED, None),
    "feature-not-implemented": (S.FAILED, None),
    "malformed-result": (S.FAILED, None),
}


@pytest.mark.parametrize("condition", ERRORS, ids=str)
def test_on_error(condition):
    j = job(S.DISPATCHED, attempts=1, dispatched=NOW - 1)
    core.apply(j, core.on_error(j, condition, "why", NOW, POLICY), NOW)
    assert (j.state, j.not_before, j.attempts) == (*ERRORS[condition], 1)  # the same run, never a new one


def test_progress_means_running_and_is_idempotent():
    j = job(S.DISPATCHED, dispatched=NOW - 1)
    core.apply(j, core.on_progress(j, NOW), NOW)
    assert (j.state, j.started) == (S.RUNNING, NOW)
    assert core.on_progress(j, NOW + 1) == Plan()


def test_events_on_a_finished_job_change_nothing():
    done = job(S.CANCELLED)
    assert core.on_result(done, JobResult("j1.1", "ok"), NOW, POLICY) == Plan()
    assert core.on_error(done, "offline", "", NOW, POLICY) == Plan()


def test_wire_ids_name_the_run_and_split_back():
    assert core.wire_id(job()) == "j1.1" and core.wire_id(job(attempts=3)) == "j1.3"
    assert core.split_wire_id("3f0c-aa.s2.1") == ("3f0c-aa.s2", 1)
    assert core.split_wire_id("nodots") is None and core.split_wire_id("a.b") is None


def test_wire_jobs():
    assert core.wire_job(job()) == ScriptJob("j1.1", 60.0, "true")
    tasklet = job(action="tasklet", tags=["facts"], params_json='{"sys": "/x"}')
    assert core.wire_job(tasklet) == TaskletJob("j1.1", 60.0, ("facts",), {"sys": "/x"})


def test_the_log_keeps_its_tail_and_stamps_engine_notes():
    j = job()
    core.apply(j, Plan(log=["sent"]), 0.0)
    assert j.log == "[1970-01-01T00:00:00Z engine] sent\n"
    long = core.append_log("x\n" * 100, "end\n", limit=50)
    assert long.startswith("[... earlier log cut ...]\n") and long.endswith("x\nend\n") and len(long) < 80
