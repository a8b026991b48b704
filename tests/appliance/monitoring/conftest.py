"""Helpers for the monitoring tests: real agents on the real ejabberd, a controller client
that knows who is online from presence, and a send function over agent.dispatch."""

import asyncio
import secrets

import pytest
import slixmpp

from agent.client import Agent
from agent.dispatch import send_job
from appliance.config import validate
from appliance.osis.store import open_store
from appliance.tasklets import Engine
from tests.fixtures.xmpp import loopback_client, offline, online

TIMEOUT = 20  # seconds for a login or a presence to arrive


async def eventually(predicate, timeout: float = TIMEOUT, step: float = 0.1) -> None:
    """Poll `predicate` until true; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


class Fleet:
    """A controller client and agents on one XMPP server. `online()` is the bare JIDs of
    the agents whose presence the controller has (directed presence and subscription),
    `send(jid, job, timeout)` sends a job to an agent by its bare JID; `sent` records
    (jid, job id) of every job sent."""

    def __init__(self, server):
        self.server, self.tag = server, secrets.token_hex(3)
        self.agents: dict[str, Agent] = {}
        self.present: set[str] = set()
        self.sent: list[tuple[str, str]] = []
        self.client: slixmpp.ClientXMPP | None = None

    async def __aenter__(self):
        jid = await asyncio.to_thread(self.server.register, f"ctl{self.tag}", "pw")
        self.client = loopback_client(jid, "pw")
        self.client.add_event_handler("presence_available", lambda p: self._seen(p, True))
        self.client.add_event_handler("presence_unavailable", lambda p: self._seen(p, False))
        await asyncio.wait_for(online(self.client, self.server), TIMEOUT)
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(a.stop() for a in self.agents.values()))
        await offline(self.client)

    def _seen(self, presence, available: bool) -> None:
        jid = presence["from"].bare
        if jid in self.agents:
            (self.present.add if available else self.present.discard)(jid)

    async def add(self, name: str, engine: Engine) -> str:
        """Start agent NAME (running `engine`); its bare JID once the controller sees it."""
        jid = await asyncio.to_thread(self.server.register, f"{name}{self.tag}", "pw")
        agent = Agent(jid, "pw", self.server.host, self.server.port, engine, node={},
                      controllers=[self.client.boundjid.bare])
        self.agents[jid] = agent
        agent.start()
        self.client.send_presence_subscription(pto=jid)
        await eventually(lambda: jid in self.present)
        return jid

    async def remove(self, jid: str) -> None:
        """Stop an agent; returns once the controller saw it go."""
        await self.agents[jid].stop()
        await eventually(lambda: jid not in self.present)

    def online(self) -> set[str]:
        return set(self.present)

    async def send(self, jid: str, job, timeout: float):
        self.sent.append((jid, job.id))
        return await send_job(self.client, f"{jid}/agent", job, timeout)

    send_job = send  # the controller's interface (appliance.components.Runtime.controller)


@pytest.fixture
async def fleet(xmpp_server):
    async with Fleet(xmpp_server) as fleet:
        yield fleet


@pytest.fixture(scope="session")
def builtin_engine() -> Engine:
    return Engine.load([], timeout=20)


@pytest.fixture
def store(tmp_path):
    store = open_store(validate({}).osis, tmp_path)
    yield store
    store.close()
