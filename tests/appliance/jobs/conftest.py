"""A fabric for the workflow engine's tests: the real ejabberd (accounts made in bulk), an
OSIS store in a temp dir, the controller, agents, and the engine, all in this process."""

import asyncio
import contextlib
import secrets
import time

import pytest

from agent.client import Agent
from appliance.config import validate
from appliance.fabric.controller import Controller
from appliance.jobs.core import TERMINAL, Policy
from appliance.jobs.engine import Engine
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from appliance.tasklets import Engine as Tasklets
from tests.fixtures.xmpp import connected, stopped, until

PASSWORD = "pw"
FAST = Policy(attempts=1, retry_delay=0.3, queue_timeout=3600, grace=5)


@pytest.fixture(scope="session")
def tasklets() -> Tasklets:
    return Tasklets.load([])


@pytest.fixture
def store(tmp_path):
    store = open_store(validate({}).osis, tmp_path)
    yield store
    store.close()


class Fabric:
    """One test's accounts, Agent objects, controller, agents and engine."""

    def __init__(self, server, store, tasklets):
        self.server, self.store, self.tasklets = server, store, tasklets
        self.tag = secrets.token_hex(3)
        self.ctl_jid = server.register_many([f"ctl{self.tag}"], PASSWORD)[0]
        self.controller: Controller | None = None
        self.engine_task: asyncio.Task | None = None
        self.agents: list[Agent] = []

    def make_agents(self, count: int, machines: bool = False) -> list[str]:
        """Accounts and Agent objects (with a Machine each when `machines`); their JIDs."""
        names = [f"n{self.tag}x{i}" for i in range(count)]
        jids = self.server.register_many(names, PASSWORD)
        for name, jid in zip(names, jids, strict=True):
            machine = None
            if machines:
                machine = f"m-{name}"
                self.store.put(domain.Machine(guid=machine, hostname=name, state=domain.MachineState.ENROLLED))
            self.store.put(domain.Agent(guid=f"agent-{name}", jid=jid, machine=machine))
        return jids

    def agent(self, jid: str, **kw) -> Agent:
        kw.setdefault("controllers", [self.ctl_jid])
        kw.setdefault("progress_interval", 0.2)
        agent = Agent(jid, PASSWORD, self.server.host, self.server.port, self.tasklets, **kw)
        self.agents.append(agent)
        return agent

    async def start_controller(self) -> Controller:
        self.controller = Controller(self.ctl_jid, PASSWORD, self.server.host, self.server.port,
                                     agents=lambda: [s.obj.jid for s in self.store.scan("agent")])
        await connected(self.controller)
        return self.controller

    async def start_engine(self, policy: Policy = FAST) -> Engine:
        engine = Engine(lambda: self.store, lambda: self.controller, self.ctl_jid, policy, tick=0.2)
        self.engine_task = asyncio.create_task(engine.run())
        return engine

    async def stop_engine(self) -> None:
        if self.engine_task is not None:
            self.engine_task.cancel()
            await asyncio.gather(self.engine_task, return_exceptions=True)
            self.engine_task = None

    async def online(self, *agents: Agent, timeout: float = 30) -> None:
        """Start the agents and wait until the controller sees them online."""
        await connected(*agents, timeout=timeout)
        await until(lambda: {a.boundjid.bare for a in agents} <= self.controller.online(), timeout)

    def job(self, guid: str):
        return self.store.get("job", guid).obj

    async def finished(self, guid: str, timeout: float = 30):
        """The job once it reached a final state."""
        await until(lambda: self.job(guid).state in TERMINAL, timeout, step=0.1)
        return self.job(guid)

    async def state(self, guid: str, *states: int, timeout: float = 30):
        await until(lambda: self.job(guid).state in states, timeout, step=0.05)
        return self.job(guid)

    async def close(self) -> None:
        await self.stop_engine()
        await stopped(*self.agents, *([self.controller] if self.controller else []))


@pytest.fixture
async def fabric(xmpp_bulk_server, store, tasklets):
    fab = Fabric(xmpp_bulk_server, store, tasklets)
    try:
        yield fab
    finally:
        await fab.close()


@pytest.fixture(scope="module")
def appliance(request, xmpp_bulk_server, tmp_path_factory):
    """`appliance run` for the module (tests.appliance.jobs.running); its log must show no error."""
    from .running import RunningAppliance  # it imports this module's PASSWORD

    running = RunningAppliance(xmpp_bulk_server, tmp_path_factory.mktemp(request.module.__name__.split(".")[-1]))
    yield running
    log = running.stop()
    assert "level=error" not in log, log


@pytest.fixture
async def agent(appliance, tasklets):
    """The running appliance's one agent, online."""
    client = appliance.agent(tasklets)
    await connected(client)
    yield client
    await stopped(client)


@contextlib.contextmanager
def elapsed():
    """Seconds spent in the block, as a one-item list filled at its end."""
    box, began = [0.0], time.monotonic()
    try:
        yield box
    finally:
        box[0] = time.monotonic() - began
