"""The agent against a real ejabberd: presence, tasklet and script jobs, errors, reconnect."""

import asyncio
import os
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from agent.client import BACKOFF_MAX, Agent, next_delay
from agent.dispatch import JobError, send_job
from agent.protocol import NS, JobResult, ScriptJob, TaskletJob, result_element
from tests.agent.conftest import TIMEOUT, agent_and_controller, controller_client, wait_for
from tests.fixtures.servers import EjabberdServer, free_port
from tests.fixtures.xmpp import offline, online


def test_backoff_doubles_from_one_second_up_to_thirty():
    delays = [1.0]
    for _ in range(7):
        delays.append(next_delay(delays[-1]))
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30] and BACKOFF_MAX == 30


async def test_agent_shows_presence(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        assert agent.boundjid.resource == "agent"
        seen = asyncio.get_running_loop().create_future()
        controller.add_event_handler(
            "presence_available",
            lambda p: p["from"] == agent.boundjid and not seen.done() and seen.set_result(p))
        controller.send_presence_subscription(agent.boundjid.bare)  # the agent authorizes it
        presence = await asyncio.wait_for(seen, TIMEOUT)
        assert presence["type"] == "available"


async def test_ping_tasklet_job_gives_pong(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        result = await send_job(controller, agent.boundjid.full, TaskletJob("j1", 10, ("ping",)), TIMEOUT)
    assert (result.id, result.status, result.exit) == ("j1", "ok", None)
    assert [(r["name"], r["status"], r["value"]) for r in result.value] == [("ping", "ok", "pong")]


async def test_facts_job_returns_this_machines_cpu_count(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        result = await send_job(controller, agent.boundjid.full, TaskletJob("f", 20, ("facts",)), 30)
    assert result.status == "ok"
    assert result.value[0]["value"]["cpus"] == os.cpu_count()


async def test_script_job_returns_exit_status_and_output(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        ok = await send_job(controller, agent.boundjid.full, ScriptJob("s1", 10, "echo out; echo err >&2"), TIMEOUT)
        bad = await send_job(controller, agent.boundjid.full, ScriptJob("s2", 10, "printf '<&>'; exit 7"), TIMEOUT)
    assert (ok.status, ok.exit, ok.output) == ("ok", 0, "out\nerr\n")
    assert (bad.status, bad.exit, bad.output) == ("failed", 7, "<&>")


async def test_script_past_its_timeout_comes_back_timed_out_quickly(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        started = time.monotonic()
        job = ScriptJob("slow", 1, "echo started; sleep 30 & sleep 30")  # a child holds stdout too
        result = await send_job(controller, agent.boundjid.full, job, TIMEOUT)
        elapsed = time.monotonic() - started
    assert result.status == "timed_out" and result.exit is None
    assert result.output.startswith("started\n") and "killed after 1 s" in result.output
    assert elapsed < 4


async def test_malformed_job_gets_an_iq_error_and_the_agent_keeps_working(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        iq = controller.make_iq_set(ito=agent.boundjid.full)
        iq.append(ET.fromstring(f'<job xmlns="{NS}" id="no spaces" timeout="1"><script>true</script></job>'))
        with pytest.raises(IqError) as info:
            await iq.send(timeout=TIMEOUT)
        assert info.value.condition == "bad-request" and "id" in info.value.text
        result = await send_job(controller, agent.boundjid.full, TaskletJob("j2", 10, ("ping",)), TIMEOUT)
    assert result.status == "ok"


async def test_job_from_a_non_controller_is_forbidden(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine, controllers=["someone@rack.test"]) as (agent, ctl):
        with pytest.raises(JobError) as info:
            await send_job(ctl, agent.boundjid.full, ScriptJob("s", 5, "touch /tmp/never"), TIMEOUT)
    assert info.value.condition == "forbidden"


async def test_job_to_an_agent_that_is_not_online_fails_fast(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        with pytest.raises(JobError) as info:
            await send_job(controller, agent.boundjid.bare + "/elsewhere", TaskletJob("j", 5, ("ping",)), TIMEOUT)
    assert info.value.condition == "service-unavailable"


async def test_an_answer_forged_by_another_account_is_not_taken(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        forger = controller_client(await asyncio.to_thread(xmpp_server.register, "forger" + os.urandom(3).hex(), "pw"), "pw")
        await asyncio.wait_for(online(forger, xmpp_server), TIMEOUT)
        try:
            job = ScriptJob("real", 10, "sleep 1; echo real")
            sending = asyncio.ensure_future(send_job(controller, agent.boundjid.full, job, TIMEOUT))
            await wait_for(lambda: getattr(controller, "_pylabs_answers", None)
                           and controller._pylabs_answers.waiting)  # the job's IQ is out
            [iq_id] = controller._pylabs_answers.waiting
            forged = forger.make_iq_result(id=iq_id, ito=controller.boundjid.full)
            forged.append(result_element(JobResult("real", "ok", exit=0, output="forged\n")))
            forged.send()
            result = await sending
        finally:
            await offline(forger)
    assert result.output == "real\n"


def _start_server(port: int) -> EjabberdServer:
    return EjabberdServer(port=port).start()


async def test_agent_reconnects_after_the_server_comes_back(engine):
    port = free_port()
    server = await asyncio.to_thread(_start_server, port)
    try:
        async with agent_and_controller(server, engine, controllers=["ctl2@rack.test"]) as (agent, _controller):
            agent_jid = agent.boundjid.bare
            await asyncio.to_thread(server.stop)
            await wait_for(lambda: agent._down.is_set(), 10)
            server = await asyncio.to_thread(_start_server, port)  # a new spool: register again
            for user in (agent_jid.split("@")[0], "ctl2"):
                await asyncio.to_thread(server.register, user, "pw")
            await wait_for(lambda: agent.sessions >= 2, 30)
            controller = controller_client("ctl2@rack.test", "pw")
            try:
                await asyncio.wait_for(online(controller, server), TIMEOUT)
                result = await send_job(controller, agent.boundjid.full, TaskletJob("r", 10, ("ping",)), TIMEOUT)
            finally:
                await offline(controller)
            assert result.value[0]["value"] == "pong"
    finally:
        await asyncio.to_thread(server.stop)


def test_an_agent_needs_a_controller(engine):
    """Enrolled machines share the domain: none may send another one jobs."""
    with pytest.raises(ValueError, match="at least one controller"):
        Agent("node@rack.test", "pw", "127.0.0.1", 5222, engine, controllers=[])
