"""The xmpp component: the appliance's controller connection to the XMPP fabric.

It logs in as [xmpp] user @ [node] domain (password: [xmpp] password, else the one
generated into STATE_DIR/xmpp-password, see appliance.fabric.accounts) with the
controller of appliance.fabric.controller, which reconnects with backoff by itself, and
sets `runtime.controller` once the first session is up (None again when the component
stops). While it runs:

- the agents' presence goes into OSIS (appliance.fabric.agents: Agent.status, last_seen),
  and the controller greets the agents OSIS knows whenever its session starts;
- with [xmpp] accounts = "ejabberd" or "prosody", the controller's and the agents'
  accounts are provisioned (appliance.fabric.accounts.run_accounts).

Both need the osis component; without it the controller still connects and sends jobs.
"""

import asyncio
import logging

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.fabric import accounts
from appliance.fabric.agents import AgentStatus
from appliance.fabric.controller import Controller
from appliance.log import fields
from appliance.runner import Component
from appliance.services import store_of

log = logging.getLogger("appliance.xmpp")


class Xmpp(Component):
    name = "xmpp"

    def __init__(self, cfg: Config, runtime: Runtime):
        self.cfg, self.runtime = cfg, runtime
        self.controller: Controller | None = None
        self.status: AgentStatus | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._stop = asyncio.Event()
        password = await asyncio.to_thread(accounts.controller_password, self.cfg)
        jid = accounts.controller_jid(self.cfg)
        self.status = AgentStatus(store_of(self.runtime)) if self.runtime.store is not None else None
        if self.status is not None:
            await self.status.start()
        known = self.status.known if self.status is not None else tuple
        self.controller = Controller(jid, password, self.cfg.xmpp.host, self.cfg.xmpp.port, agents=known)
        if self.status is not None:
            self.controller.on_presence(self.status.changed)
        self.controller.add_event_handler("session_start", self._connected)
        log.info("xmpp.starting", extra=fields(jid=jid, server=f"{self.cfg.xmpp.host}:{self.cfg.xmpp.port}"))

    def _connected(self, _event) -> None:
        if not self._stop.is_set():
            self.runtime.controller = self.controller
            log.info("xmpp.connected", extra=fields(session=self.controller.sessions,
                                                    jid=self.controller.boundjid.full))

    async def serve(self) -> None:
        tasks = [self.controller.start(), asyncio.create_task(self._stop.wait())]
        if self.status is not None:
            tasks.append(asyncio.create_task(self.status.run()))
        if self.cfg.xmpp.accounts != "none" and self.runtime.store is not None:
            tasks.append(asyncio.create_task(accounts.run_accounts(self.cfg, self.runtime.store)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not tasks[1] and task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)

    async def stop(self) -> None:
        self._stop.set()
        if self.runtime.controller is self.controller:
            self.runtime.controller = None
        if self.controller is not None:
            await self.controller.stop()


@register("xmpp")
def build(cfg: Config, runtime: Runtime) -> Xmpp:
    return Xmpp(cfg, runtime)
