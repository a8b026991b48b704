"""Helpers for the agent tests: an agent and a controller client on a real ejabberd."""

import asyncio
import contextlib
import secrets

import pytest
import slixmpp

from agent.client import Agent
from appliance.tasklets import Engine
from tests.fixtures.xmpp import loopback_client, offline, online

TIMEOUT = 15  # seconds for a login, a presence or a job round trip


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load([])


def controller_client(jid: str, password: str) -> slixmpp.ClientXMPP:
    """The appliance's side: a plain slixmpp client, plaintext on loopback."""
    return loopback_client(jid, password)


async def wait_for(predicate, timeout: float = TIMEOUT, step: float = 0.05) -> None:
    """Poll `predicate` until true; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def register_pair(server, tag: str | None = None) -> tuple[str, str]:
    """(agent JID, controller JID), freshly registered (password "pw")."""
    tag = tag or secrets.token_hex(3)
    return server.register(f"node{tag}", "pw"), server.register(f"appliance{tag}", "pw")


@contextlib.asynccontextmanager
async def agent_and_controller(server, engine, **agent_kw):
    """A running Agent and a logged-in controller client; both stopped at the end."""
    agent_jid, ctl_jid = await asyncio.to_thread(register_pair, server)
    agent_kw.setdefault("controllers", [ctl_jid])
    agent = Agent(agent_jid, "pw", server.host, server.port, engine, node={"name": "node"}, **agent_kw)
    controller = controller_client(ctl_jid, "pw")
    agent.start()
    try:
        await wait_for(lambda: agent.sessions >= 1)
        await asyncio.wait_for(online(controller, server), TIMEOUT)
        yield agent, controller
    finally:
        await asyncio.gather(agent.stop(), offline(controller))
