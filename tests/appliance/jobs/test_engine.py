"""The workflow engine against a real ejabberd: jobs from OSIS to agents and back."""

import asyncio
import json

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from appliance.jobs import submit
from appliance.jobs.core import Policy
from appliance.osis.schema import domain
from tests.fixtures.xmpp import loopback_client, offline, online, until

from .conftest import FAST, PASSWORD

S = domain.JobState


async def test_a_job_goes_round_trip_through_the_engine(fabric):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    queued = submit.run_tasklets(fabric.store, jid, ["ping"])
    assert queued.obj.state == S.QUEUED
    job = await fabric.finished(queued.obj.guid)
    assert job.state == S.SUCCEEDED, job.log
    assert [r["value"] for r in json.loads(job.result_json)] == ["pong"]
    assert job.owner == fabric.ctl_jid and job.attempts == 1 and job.error is None
    assert "sent to" in job.log and "succeeded" in job.log
    assert job.created <= job.started <= job.finished


async def test_a_script_streams_its_output_into_the_log_while_it_runs(fabric, tmp_path):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    gate = tmp_path / "gate"
    queued = submit.run_script(fabric.store, jid, f"echo first; while [ ! -e {gate} ]; do sleep 0.1; done; echo last")
    running = await fabric.state(queued.obj.guid, S.RUNNING)
    await until(lambda: "first" in (fabric.job(queued.obj.guid).log or ""), 10)
    gate.touch()
    job = await fabric.finished(queued.obj.guid)
    assert running.started is not None
    assert (job.state, job.exit_status, job.output) == (S.SUCCEEDED, 0, "first\nlast\n")
    assert "running" in job.log and job.log.index("first") < job.log.index("succeeded")


async def test_a_job_for_an_offline_agent_runs_when_it_comes_online(fabric):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.start_engine()
    queued = submit.run_tasklets(fabric.store, jid, ["ping"])
    await asyncio.sleep(1.5)  # several ticks: nothing can happen while the agent is away
    assert fabric.job(queued.obj.guid).state == S.QUEUED
    await fabric.online(fabric.agent(jid))
    job = await fabric.finished(queued.obj.guid)
    assert job.state == S.SUCCEEDED


async def test_a_job_past_its_timeout_is_timed_out_and_killed(fabric, tmp_path):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    marker = tmp_path / "marker"
    queued = submit.run_script(fabric.store, jid, f"sleep 3; touch {marker}", timeout=1)
    job = await fabric.finished(queued.obj.guid)
    assert job.state == S.TIMED_OUT and "timeout" in job.error
    await asyncio.sleep(3)
    assert not marker.exists()  # the agent killed it


async def test_an_agent_that_never_answers_is_timed_out_after_the_grace(fabric):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    silent = fabric.agent(jid)
    silent.remove_handler("pylabs agent job")
    silent.register_handler(Callback("swallow", StanzaPath("iq@type=set/agent_job"), lambda iq: None))
    await fabric.online(silent)
    await fabric.start_engine(Policy(grace=1))
    queued = submit.run_script(fabric.store, jid, "true", timeout=1)
    job = await fabric.finished(queued.obj.guid, timeout=20)
    assert job.state == S.TIMED_OUT and "no result" in job.error


async def test_a_busy_agent_refuses_and_the_job_is_sent_again_later(fabric):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid, max_jobs=1))
    await fabric.start_engine()
    first = submit.run_script(fabric.store, jid, "sleep 1; echo one")
    second = submit.run_script(fabric.store, jid, "sleep 1; echo two")
    jobs = [await fabric.finished(j.obj.guid) for j in (first, second)]
    assert [(j.state, j.output) for j in jobs] == [(S.SUCCEEDED, "one\n"), (S.SUCCEEDED, "two\n")]
    assert any("resource-constraint" in (j.log or "") for j in jobs)


async def test_a_failed_run_is_run_again_when_the_policy_says_so(fabric, tmp_path):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine(Policy(attempts=3, retry_delay=0.2, grace=5))
    runs = tmp_path / "runs"
    flaky = submit.run_script(fabric.store, jid, f"echo x >> {runs}; [ $(wc -l < {runs}) -ge 2 ]")
    job = await fabric.finished(flaky.obj.guid)
    assert (job.state, job.attempts, runs.read_text().count("x")) == (S.SUCCEEDED, 2, 2)
    always = tmp_path / "always"
    broken = submit.run_script(fabric.store, jid, f"echo x >> {always}; exit 3")
    job = await fabric.finished(broken.obj.guid)
    assert (job.state, job.attempts, job.exit_status, job.error) == (S.FAILED, 3, 3, "exit status 3")
    assert always.read_text().count("x") == 3


async def test_a_failed_run_is_final_by_default(fabric, tmp_path):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine(FAST)
    job = await fabric.finished(submit.run_script(fabric.store, jid, "exit 4").obj.guid)
    assert (job.state, job.attempts, job.exit_status) == (S.FAILED, 1, 4)


async def test_a_job_the_agent_refuses_fails_at_once_with_its_reason(fabric):
    """Not an agent of ours: a plain XMPP client that answers every job with an error."""
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    stranger = loopback_client(f"{jid}/agent", PASSWORD)
    await asyncio.wait_for(online(stranger, fabric.server), 15)
    try:
        stranger.send_presence(pto=fabric.ctl_jid)
        await until(lambda: jid in fabric.controller.online(), 10)
        await fabric.start_engine()
        job = await fabric.finished(submit.run_tasklets(fabric.store, jid, ["ping"]).obj.guid)
    finally:
        await offline(stranger)
    assert job.state == S.FAILED and job.error.startswith(("feature-not-implemented", "service-unavailable"))
    assert job.attempts == 1


async def test_cancelling_a_running_job_stops_it_on_the_agent(fabric, tmp_path):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    marker = tmp_path / "marker"
    queued = submit.run_script(fabric.store, jid, f"echo started; sleep 3; touch {marker}")
    await fabric.state(queued.obj.guid, S.RUNNING)
    assert submit.cancel(fabric.store, queued.obj.guid).obj.cancel_requested
    job = await fabric.finished(queued.obj.guid, timeout=10)
    assert job.state == S.CANCELLED and "started" in job.output
    await asyncio.sleep(3.5)
    assert not marker.exists()


async def test_cancelling_a_queued_job_means_it_never_runs(fabric, tmp_path):
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.start_engine()
    marker = tmp_path / "marker"
    queued = submit.run_script(fabric.store, jid, f"touch {marker}")
    assert submit.cancel(fabric.store, queued.obj.guid).obj.state == S.CANCELLED
    await fabric.online(fabric.agent(jid))
    await asyncio.sleep(1.5)
    assert fabric.job(queued.obj.guid).state == S.CANCELLED and not marker.exists()
