"""100 agents online at once (in this process) and one job fanned out to all of them."""

import asyncio
import json

from agent.protocol import TaskletJob
from appliance.jobs import submit
from appliance.osis.schema import domain

S = domain.JobState
AGENTS = 100


async def test_a_job_fanned_out_to_100_agents_comes_back_from_each(fabric):
    jids = fabric.make_agents(AGENTS)
    await fabric.start_controller()
    agents = [fabric.agent(jid) for jid in jids]
    await fabric.online(*agents, timeout=90)
    assert set(jids) <= fabric.controller.online()
    await fabric.start_engine()
    queued = [submit.run_script(fabric.store, jid, "echo $PPID") for jid in jids]
    jobs = [await fabric.finished(q.obj.guid, timeout=90) for q in queued]
    assert [j.state for j in jobs] == [S.SUCCEEDED] * AGENTS
    assert {j.jid for j in jobs} == set(jids)  # each to its own agent, once
    assert all(j.attempts == 1 and j.exit_status == 0 for j in jobs)


async def test_tasklet_fan_out_through_the_controller_alone(fabric):
    """The controller's send_job, which the monitoring scheduler uses, to every agent."""
    jids = fabric.make_agents(AGENTS)
    await fabric.start_controller()
    await fabric.online(*[fabric.agent(jid) for jid in jids], timeout=90)
    results = await asyncio.gather(*(fabric.controller.send_job(jid, TaskletJob(f"p{i}", 30, ("ping",)), 60)
                                     for i, jid in enumerate(jids)))
    assert [r.status for r in results] == ["ok"] * AGENTS
    assert {json.dumps(r.value[0]["value"]) for r in results} == {'"pong"'}
