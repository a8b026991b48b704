"""The controller against a real ejabberd: who is online, jobs, progress, reconnecting."""

import asyncio
import xml.etree.ElementTree as ET

import pytest

from agent.client import Agent
from agent.dispatch import JobError
from agent.protocol import NS, ScriptJob, TaskletJob
from appliance.fabric.controller import Controller
from appliance.fabric.presence import Presence
from tests.appliance.jobs.conftest import PASSWORD
from tests.fixtures.servers import EjabberdServer, free_port
from tests.fixtures.xmpp import connected, loopback_client, offline, online, stopped, until


async def test_online_follows_agents_coming_and_going(fabric):
    jids = fabric.make_agents(2)
    controller = await fabric.start_controller()
    changes = []
    controller.on_presence(lambda jid, up: changes.append((jid, up)))
    agents = [fabric.agent(jid) for jid in jids]
    await fabric.online(*agents)
    assert set(jids) <= controller.online() and fabric.ctl_jid not in controller.online()
    await agents[0].stop()
    await until(lambda: jids[0] not in controller.online(), 10)
    assert jids[1] in controller.online()
    assert changes.count((jids[0], True)) == 1 and changes[-1] == (jids[0], False)


async def test_a_controller_that_starts_after_its_agents_learns_who_is_online(fabric):
    """The agents greeted nobody; the controller's hello to the agents OSIS knows is answered."""
    jids = fabric.make_agents(3)
    agents = [fabric.agent(jid) for jid in jids]
    await connected(*agents)
    controller = await fabric.start_controller()
    await until(lambda: set(jids) <= controller.online(), 10)


async def test_send_job_reaches_online_agents_and_refuses_offline_ones(fabric):
    jids = fabric.make_agents(2)
    controller = await fabric.start_controller()
    await fabric.online(fabric.agent(jids[0]))
    result = await controller.send_job(jids[0], TaskletJob("t", 10, ("ping",)), 15)
    assert result.value[0]["value"] == "pong"
    with pytest.raises(JobError) as info:
        await controller.send_job(jids[1], TaskletJob("t", 10, ("ping",)), 15)
    assert info.value.condition == "offline"
    with pytest.raises(JobError) as info:
        await controller.send_job(f"{jids[0]}/elsewhere", TaskletJob("t", 10, ("ping",)), 15)
    assert info.value.condition == "offline"


async def test_progress_reaches_listeners_and_garbage_is_dropped(fabric):
    [jid] = fabric.make_agents(1)
    controller = await fabric.start_controller()
    seen = []
    controller.on_progress(lambda sender, progress: seen.append((sender, progress.output)))
    await fabric.online(fabric.agent(jid))
    liar = loopback_client(f"{jid}/liar", PASSWORD)
    await asyncio.wait_for(online(liar, fabric.server), 15)
    try:
        for bad in (f'<progress xmlns="{NS}" id="x" seq="zero"/>', f'<progress xmlns="{NS}" seq="1"/>'):
            msg = liar.make_message(mto=controller.boundjid.full)
            msg.append(ET.fromstring(bad))
            msg.send()
        await until(lambda: controller.malformed == 2, 10)
    finally:
        await offline(liar)
    result = await controller.send_job(jid, ScriptJob("s", 10, "echo hello; sleep 0.5"), 15)
    assert result.status == "ok" and (jid, "hello\n") in seen


def _start_server(port: int) -> EjabberdServer:
    return EjabberdServer(port=port, registration=True).start()


async def test_the_controller_reconnects_after_the_server_restarts(tasklets):
    port = free_port()
    server = await asyncio.to_thread(_start_server, port)
    users = ["ctl", "node"]
    try:
        await asyncio.to_thread(server.register_many, users, PASSWORD)
        controller = Controller("ctl@rack.test", PASSWORD, server.host, port, agents=lambda: ["node@rack.test"])
        agent = Agent("node@rack.test", PASSWORD, server.host, port, tasklets, controllers=["ctl@rack.test"])
        gone = []
        controller.on_presence(lambda jid, up: gone.append(jid) if not up else None)
        await connected(controller, agent)
        await until(lambda: "node@rack.test" in controller.online(), 10)
        await asyncio.to_thread(server.stop)
        await until(lambda: not controller.connected(), 15)
        assert controller.online() == set() and gone == ["node@rack.test"]
        with pytest.raises(JobError) as info:
            await controller.send_job("node@rack.test", TaskletJob("t", 5, ("ping",)), 5)
        assert info.value.condition == "offline"
        server = await asyncio.to_thread(_start_server, port)  # a new spool: register again
        await asyncio.to_thread(server.register_many, users, PASSWORD)
        await until(lambda: controller.sessions >= 2 and "node@rack.test" in controller.online(), 60)
        result = await controller.send_job("node@rack.test", TaskletJob("t", 10, ("ping",)), 15)
        assert result.value[0]["value"] == "pong"
        await stopped(controller, agent)
    finally:
        await asyncio.to_thread(server.stop)


PRESENCE = {
    # events (bare, resource, available?) -> changes reported, online after
    "one resource": ([("a", "agent", True)], [True], {"a"}),
    "second resource is no news": ([("a", "agent", True), ("a", "x", True)], [True, False], {"a"}),
    "offline when the last one goes": (
        [("a", "agent", True), ("a", "x", True), ("a", "x", False), ("a", "agent", False)],
        [True, False, False, True], set()),
    "unknown resource leaving": ([("a", "agent", False)], [False], set()),
}


@pytest.mark.parametrize("case", PRESENCE, ids=str)
def test_presence_table(case):
    events, changes, after = PRESENCE[case]
    presence = Presence()
    got = [presence.available(b, r) if up else presence.unavailable(b, r) for b, r, up in events]
    assert (got, presence.online()) == (changes, after)


def test_presence_prefers_the_agent_resource_and_clears():
    presence = Presence()
    presence.available("a", "zz")
    presence.available("a", "agent")
    presence.available("b", "other")
    assert (presence.resource("a"), presence.resource("b"), presence.resource("c")) == ("agent", "other", None)
    assert presence.clear() == ["a", "b"] and presence.online() == set()
