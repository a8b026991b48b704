"""The workflow engine restarted mid-job: the job is neither lost nor run twice."""

import asyncio

from appliance.jobs import submit
from appliance.osis.schema import domain

S = domain.JobState


def _job_script(tmp_path):
    """A script that counts its runs in a file and waits for a gate file to end."""
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    script = f"echo run >> {runs}; echo started; while [ ! -e {gate} ]; do sleep 0.1; done; echo end"
    return script, runs, gate


async def _running_job(fabric, tmp_path):
    """One agent online, the engine up, and a script job of _job_script RUNNING on it."""
    [jid] = fabric.make_agents(1)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    script, runs, gate = _job_script(tmp_path)
    queued = submit.run_script(fabric.store, jid, script)
    await fabric.state(queued.obj.guid, S.RUNNING)
    return queued, runs, gate


async def test_appliance_down_while_the_job_finishes_gets_its_result_after_restart(fabric, tmp_path):
    """Controller and engine both go away; the agent finishes meanwhile and its answer
    finds nobody. Back up, the engine sends the same run again: the agent answers from
    its journal."""
    queued, runs, gate = await _running_job(fabric, tmp_path)
    await fabric.stop_engine()
    await fabric.controller.stop()
    gate.touch()
    await asyncio.sleep(1)  # it ends while no engine listens
    assert fabric.job(queued.obj.guid).state == S.RUNNING
    await fabric.start_controller()
    await fabric.start_engine()
    job = await fabric.finished(queued.obj.guid)
    assert (job.state, job.output) == (S.SUCCEEDED, "started\nend\n")
    assert runs.read_text() == "run\n"  # one run only
    assert "sent again" in job.log


async def test_engine_restarted_while_the_job_still_runs_joins_it(fabric, tmp_path):
    queued, runs, gate = await _running_job(fabric, tmp_path)
    await fabric.stop_engine()
    await fabric.start_engine()
    await asyncio.sleep(1)  # the new engine has sent it again: the agent joined the run
    gate.touch()
    job = await fabric.finished(queued.obj.guid)
    assert (job.state, job.output, job.attempts) == (S.SUCCEEDED, "started\nend\n", 1)
    assert runs.read_text() == "run\n"


async def test_jobs_queued_while_no_engine_ran_are_sent_when_it_starts(fabric):
    [jid] = fabric.make_agents(1)
    queued = [submit.run_tasklets(fabric.store, jid, ["ping"]) for _ in range(3)]
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    jobs = [await fabric.finished(q.obj.guid) for q in queued]
    assert [j.state for j in jobs] == [S.SUCCEEDED] * 3
