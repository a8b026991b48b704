"""The tasklets component: the appliance's own agent, for jobs that run on the appliance.

Some jobs must run where the appliance runs — `power` drives the QEMU and libvirt VMs of
this host — so the appliance is an agent of the fabric too. With [tasklets] enabled this
component runs agent.client.Agent in the appliance's process, with the tasklet engine
that [tasklets] describes (builtin, paths, timeout; as `appliance tasklets` loads it):

- it logs in as `<[xmpp] user>-agent@<[node] domain>` (e.g. appliance-agent@rack.internal),
  with the password generated into STATE_DIR/xmpp-agent-password (0600,
  appliance.fabric.accounts.agent_password), to the [xmpp] server, and takes jobs only
  from the controller's JID (accounts.controller_jid);
- at start it registers itself in OSIS as the Agent `agent-appliance` (JID and password;
  written only when absent or changed), so that `appliance jobs run power --agent
  agent-appliance …` and the workflow engine find it, the xmpp component records its
  presence, and the account sync ([xmpp] accounts = "ejabberd"/"prosody") makes its XMPP
  account like an enrolled machine's. Until that account exists, the agent's reconnect
  loop tries again (1 s, doubling up to 30 s). Without [osis] the agent still runs, but is
  not registered (logged at start);
- its journal of recent jobs is kept in STATE_DIR/agent-jobs, so a job sent again after a
  restart of the appliance is answered, never run twice.

It needs [xmpp] enabled (its server and its controller); stopping takes at most 5 s.
"""

import asyncio
import logging
from pathlib import Path

from agent.client import Agent
from agent.journal import Journal
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.fabric import accounts
from appliance.log import fields
from appliance.osis.kv import NEW, Conflict, StoreError
from appliance.osis.schema import domain
from appliance.osis.store import NotFound, ObjectStore
from appliance.runner import Component
from appliance.tasklets import Engine

log = logging.getLogger("appliance.tasklets")

AGENT_GUID = "agent-appliance"
JOURNAL_DIR = "agent-jobs"
DISCONNECT_WAIT = 1.0  # seconds for a clean close of the stream; stop() takes at most 5 s


def register_agent(store: ObjectStore, jid: str, password: str) -> bool:
    """Make the Agent AGENT_GUID carry `jid` and `password`; True if it was written."""
    for _ in range(3):  # the xmpp component may write its status meanwhile
        try:
            found = store.get("agent", AGENT_GUID)
        except NotFound:
            agent, revision = domain.Agent(guid=AGENT_GUID), NEW
        else:
            agent, revision = found.obj, found.revision
            if agent.jid == jid and agent.password == password:
                return False
        agent.jid, agent.password = jid, password
        try:
            store.put(agent, expect=revision)
            return True
        except Conflict:
            continue
    raise StoreError(f"agent {AGENT_GUID}: changed by others three times while being registered")


class Tasklets(Component):
    name = "tasklets"

    def __init__(self, cfg: Config, runtime: Runtime):
        self.cfg, self.runtime = cfg, runtime
        self.agent: Agent | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._stop = asyncio.Event()
        cfg = self.cfg
        jid, password = accounts.agent_jid(cfg), await asyncio.to_thread(accounts.agent_password, cfg)
        engine = await asyncio.to_thread(Engine.from_config, cfg.tasklets)
        for error in engine.errors:
            log.warning("tasklets.not_loaded", extra=fields(file=error.file, reason=error.reason))
        if self.runtime.store is not None:
            written = await asyncio.to_thread(register_agent, self.runtime.store, jid, password)
            log.info("tasklets.registered", extra=fields(agent=AGENT_GUID, jid=jid, written=written))
        else:
            log.warning("tasklets.not_registered", extra=fields(
                agent=AGENT_GUID, jid=jid, reason="no object store ([osis] is not enabled)"))
        node = {"hostname": cfg.node.name, "domain": cfg.node.domain, "appliance": True}
        self.agent = Agent(jid, password, cfg.xmpp.host, cfg.xmpp.port, engine, node,
                           controllers=[accounts.controller_jid(cfg)],
                           journal=Journal(Path(cfg.node.state_dir) / JOURNAL_DIR))
        log.info("tasklets.starting", extra=fields(jid=jid, tasklets=len(engine.tasklets),
                                                   controller=accounts.controller_jid(cfg)))

    async def serve(self) -> None:
        running = self.agent.start()
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if running.done() and running.exception() is not None:
            raise running.exception()

    async def stop(self) -> None:
        self._stop.set()
        if self.agent is not None:
            await self.agent.stop(wait=DISCONNECT_WAIT)


@register("tasklets")
def build(cfg: Config, runtime: Runtime) -> Tasklets:
    return Tasklets(cfg, runtime)  # [xmpp]: appliance.config.NEEDS
