"""The jobs component: the workflow engine (appliance.jobs.engine) of this appliance.

It needs the osis component (the jobs live there) and the xmpp component (the controller
that sends them); a config that enables it without both stops start-up. Jobs wait in
OSIS while the controller is not connected, and go out when it is.
"""

import asyncio
import logging

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.fabric.accounts import controller_jid
from appliance.jobs.core import Policy
from appliance.jobs.engine import Engine
from appliance.log import fields
from appliance.runner import Component
from appliance.services import store_of

log = logging.getLogger("appliance.jobs")


def policy_of(cfg: Config) -> Policy:
    """The state machine's settings from [jobs]."""
    jobs = cfg.jobs
    return Policy(attempts=jobs.attempts, retry_delay=float(jobs.retry_delay),
                  queue_timeout=float(jobs.queue_timeout))


class Jobs(Component):
    name = "jobs"

    def __init__(self, cfg: Config, runtime: Runtime):
        self.cfg, self.runtime = cfg, runtime
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._stop = asyncio.Event()
        if self.runtime.store is None:
            raise RuntimeError("the object store is not open (the osis component must start first)")
        log.info("jobs.starting", extra=fields(controller=controller_jid(self.cfg),
                                               **vars(policy_of(self.cfg))))

    async def serve(self) -> None:
        engine = Engine(store_of(self.runtime), lambda: self.runtime.controller, controller_jid(self.cfg),
                        policy_of(self.cfg))
        self._task = asyncio.create_task(engine.run())
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({self._task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._task.done() and not self._task.cancelled() and self._task.exception():
            raise self._task.exception()

    async def stop(self) -> None:
        self._stop.set()


@register("jobs")
def build(cfg: Config, runtime: Runtime) -> Jobs:
    return Jobs(cfg, runtime)  # [osis] and [xmpp]: appliance.config.NEEDS
