"""The agent under stress and abuse: unknown jobs, too many jobs, the same job twice,
cancel, streamed progress, a journal that outlives the agent, a half-dead connection."""

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from agent.client import Agent
from agent.dispatch import JobError, cancel_job, send_job
from agent.journal import Journal
from agent.protocol import NS, ScriptJob, TaskletJob, parse_progress
from tests.agent.conftest import TIMEOUT, agent_and_controller, register_pair, wait_for
from tests.fixtures.xmpp import loopback_client, offline, online

from .proxy import Proxy


async def _raw(controller, agent, payload: str, itype: str = "set"):
    iq = controller.make_iq_set(ito=agent.boundjid.full) if itype == "set" else controller.make_iq_get(
        ito=agent.boundjid.full)
    iq.append(ET.fromstring(payload))
    return await iq.send(timeout=TIMEOUT)


async def _still_works(controller, agent):
    result = await send_job(controller, agent.boundjid.full, TaskletJob("still", 10, ("ping",)), TIMEOUT)
    assert result.value[0]["value"] == "pong"


PAYLOADS = {
    "unknown job type": (f'<job xmlns="{NS}" id="j" timeout="5"><reboot/></job>', "feature-not-implemented"),
    "two job types": (f'<job xmlns="{NS}" id="j" timeout="5"><script>a</script><script>b</script></job>',
                      "bad-request"),
    "unknown element of ours": (f'<frobnicate xmlns="{NS}" id="j"/>', None),
    "foreign payload": ('<query xmlns="urn:example:nothing"/>', None),
    "cancel without id": (f'<cancel xmlns="{NS}"/>', "bad-request"),
}


@pytest.mark.parametrize("case", PAYLOADS, ids=str)
async def test_bad_payloads_get_an_xmpp_error_and_the_agent_keeps_working(xmpp_server, engine, case):
    payload, condition = PAYLOADS[case]
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        with pytest.raises(IqError) as info:
            await _raw(controller, agent, payload)
        assert info.value.iq["type"] == "error"
        if condition:
            assert info.value.condition == condition
        await _still_works(controller, agent)


async def test_more_jobs_than_max_jobs_are_refused_with_resource_constraint(xmpp_server, engine):
    async with agent_and_controller(xmpp_server, engine, max_jobs=1) as (agent, controller):
        first = asyncio.ensure_future(send_job(controller, agent.boundjid.full, ScriptJob("a", 10, "sleep 1"), TIMEOUT))
        await wait_for(lambda: agent.runs)
        with pytest.raises(JobError) as info:
            await send_job(controller, agent.boundjid.full, ScriptJob("b", 10, "true"), TIMEOUT)
        assert info.value.condition == "resource-constraint"
        assert (await first).status == "ok"
        assert (await send_job(controller, agent.boundjid.full, ScriptJob("b", 10, "true"), TIMEOUT)).status == "ok"


async def test_the_same_job_sent_twice_runs_once(xmpp_server, engine, tmp_path):
    runs = tmp_path / "runs"
    job = ScriptJob("twice", 10, f"echo x >> {runs}; sleep 0.5; echo done")
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        to = agent.boundjid.full
        both = await asyncio.gather(send_job(controller, to, job, TIMEOUT), send_job(controller, to, job, TIMEOUT))
        again = await send_job(controller, to, job, TIMEOUT)  # after it ended: its recorded result
    assert both[0] == both[1] == again and again.output == "done\n"
    assert runs.read_text() == "x\n"


async def test_cancel_stops_a_running_job(xmpp_server, engine, tmp_path):
    marker = tmp_path / "marker"
    async with agent_and_controller(xmpp_server, engine) as (agent, controller):
        to = agent.boundjid.full
        running = asyncio.ensure_future(send_job(controller, to, ScriptJob("c", 30, f"sleep 2; touch {marker}"),
                                                 TIMEOUT))
        await wait_for(lambda: "c" in agent.runs)
        assert await cancel_job(controller, to, "c", TIMEOUT) is True
        result = await running
        assert result.status == "cancelled"
        assert await cancel_job(controller, to, "c", TIMEOUT) is False  # no such job runs any more
        await asyncio.sleep(2.5)
    assert not marker.exists()


async def test_progress_streams_to_the_controller_while_a_job_runs(xmpp_server, engine):
    chunks = []
    async with agent_and_controller(xmpp_server, engine, progress_interval=0.2) as (agent, controller):
        controller.register_handler(Callback("progress", MatchXPath(f"{{jabber:client}}message/{{{NS}}}progress"),
                                             lambda msg: chunks.append(parse_progress(msg.xml[0]))))
        script = "echo one; sleep 0.6; echo two; sleep 0.6; echo three"
        result = await send_job(controller, agent.boundjid.full, ScriptJob("p", 10, script), TIMEOUT)
        await asyncio.sleep(0.3)
    assert result.output == "one\ntwo\nthree\n"
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1)) and len(chunks) >= 2
    assert "".join(c.output for c in chunks) in ("one\ntwo\n", "one\ntwo\nthree\n")


async def test_a_job_interrupted_by_an_agent_restart_is_not_run_again(xmpp_server, engine, tmp_path):
    runs, journal = tmp_path / "runs", tmp_path / "journal"
    agent_jid, ctl_jid = await asyncio.to_thread(register_pair, xmpp_server)
    job = ScriptJob("long", 30, f"echo x >> {runs}; sleep 5")
    controller = loopback_client(ctl_jid, "pw")
    await asyncio.wait_for(online(controller, xmpp_server), TIMEOUT)
    try:
        for _ in range(2):
            agent = Agent(agent_jid, "pw", xmpp_server.host, xmpp_server.port, engine, controllers=[ctl_jid],
                          journal=Journal(journal))
            agent.start()
            await wait_for(lambda a=agent: a.sessions >= 1)
            sent = asyncio.ensure_future(send_job(controller, agent.boundjid.full, job, TIMEOUT))
            await asyncio.wait({sent}, timeout=1)
            await agent.stop()  # the first agent dies mid-job; the second answers from the journal
        result = await sent
    finally:
        await offline(controller)
    assert result.status == "failed" and "interrupted" in result.output
    assert runs.read_text() == "x\n"


async def test_a_half_dead_connection_is_found_by_the_keepalive_and_made_again(xmpp_server, engine):
    """A proxy stops passing bytes without closing anything: only the ping can tell."""
    async with Proxy(xmpp_server.host, xmpp_server.port) as proxy:
        agent_jid, ctl_jid = await asyncio.to_thread(register_pair, xmpp_server)
        agent = Agent(agent_jid, "pw", proxy.host, proxy.port, engine, controllers=[ctl_jid],
                      keepalive=0.5, keepalive_timeout=1)
        agent.start()
        try:
            await wait_for(lambda: agent.sessions >= 1)
            proxy.freeze()
            await wait_for(lambda: agent.sessions >= 2, 20)
            assert agent.connected()
        finally:
            await agent.stop()
