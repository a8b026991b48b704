"""The xmpp component: it connects the controller and keeps the Agents' status in OSIS."""

import asyncio
import secrets

import pytest

from agent.client import Agent
from appliance.components import Runtime
from appliance.components.osis import Osis
from appliance.components.xmpp import Xmpp
from appliance.config import validate
from appliance.fabric.accounts import controller_password
from appliance.osis.schema import domain
from tests.appliance.jobs.conftest import PASSWORD
from tests.fixtures.xmpp import connected, stopped, until

A = domain.AgentStatus


@pytest.fixture
async def appliance(xmpp_bulk_server, tmp_path):
    """The osis and xmpp components of an appliance whose controller account exists."""
    server, user = xmpp_bulk_server, f"appl{secrets.token_hex(3)}"
    cfg = validate({"node": {"domain": server.domain, "state_dir": str(tmp_path)}, "osis": {"enabled": True},
                    "xmpp": {"enabled": True, "host": server.host, "port": server.port, "user": user}})
    server.register_many([user], controller_password(cfg))  # generated into STATE_DIR/xmpp-password
    runtime = Runtime(status=dict)
    osis, xmpp = Osis(cfg, runtime), Xmpp(cfg, runtime)
    await osis.start()
    components = [osis, xmpp]
    runtime.cfg, runtime.components = cfg, components
    yield runtime
    for comp in reversed(components):
        await comp.stop()


def _agent(store, jid):
    return store.query("agent", [("jid", "=", jid)])[0].obj


async def test_the_controller_connects_and_agents_status_follows_presence(appliance, xmpp_bulk_server, tasklets):
    store, (_, xmpp) = appliance.store, appliance.components
    names = [f"st{secrets.token_hex(3)}" for _ in range(2)]
    jids = xmpp_bulk_server.register_many(names, PASSWORD)
    store.put(domain.Agent(guid="agent-0", jid=jids[0], status=A.ONLINE, last_seen=5.0))  # left by a crash
    store.put(domain.Agent(guid="agent-1", jid=jids[1]))
    await xmpp.start()
    assert _agent(store, jids[0]).status == A.OFFLINE  # nobody said so since the start
    serving = asyncio.create_task(xmpp.serve())
    try:
        await until(lambda: appliance.controller is not None and appliance.controller.connected(), 15)
        controller_jid = appliance.controller.boundjid.bare
        assert appliance.controller.boundjid.full == f"{appliance.cfg.xmpp.user}@{xmpp_bulk_server.domain}/controller"
        agent = Agent(jids[0], PASSWORD, xmpp_bulk_server.host, xmpp_bulk_server.port, tasklets,
                      controllers=[controller_jid])
        await connected(agent)
        await until(lambda: _agent(store, jids[0]).status == A.ONLINE, 15)
        seen = _agent(store, jids[0]).last_seen
        assert seen > 5.0 and _agent(store, jids[1]).status == A.OFFLINE
        await stopped(agent)
        await until(lambda: _agent(store, jids[0]).status == A.OFFLINE, 15)
        assert _agent(store, jids[0]).last_seen >= seen
    finally:
        await xmpp.stop()
        await asyncio.wait_for(serving, 10)
    assert appliance.controller is None
