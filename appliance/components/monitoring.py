"""The monitoring component: the scheduler of appliance.monitoring over the XMPP controller
(`runtime.controller`: its `send_job` and `online()`) and OSIS (`runtime.store`).

Until the xmpp component is connected nobody is online, so nobody is polled; when the
controller goes away (the xmpp component restarts), polls under way fail and are
counted, and polling resumes once it is back. Samples are stored while the osis
component runs; `/metrics` on the app server exports them.
"""

import asyncio
import logging

from agent.dispatch import JobError
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.monitoring.scheduler import Scheduler
from appliance.runner import Component
from appliance.services import store_of

log = logging.getLogger("appliance.monitoring")


class Monitoring(Component):
    name = "monitoring"

    def __init__(self, cfg: Config, runtime: Runtime):
        self.cfg, self.runtime = cfg, runtime
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._stop = asyncio.Event()
        mon = self.cfg.monitoring
        log.info("monitor.starting", extra=fields(interval=mon.interval, timeout=mon.timeout,
                                                  concurrency=mon.concurrency, retention=mon.retention))

    async def serve(self) -> None:
        mon = self.cfg.monitoring
        scheduler = Scheduler(self._send, self._online, store_of(self.runtime), interval=mon.interval,
                              timeout=mon.timeout, concurrency=mon.concurrency, retention=mon.retention)
        tasks = [asyncio.create_task(scheduler.run()), asyncio.create_task(self._stop.wait())]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # the scheduler ending by itself is a crash

    async def stop(self) -> None:
        self._stop.set()

    def _online(self) -> set[str]:
        controller = self.runtime.controller
        return set(controller.online()) if controller is not None else set()

    async def _send(self, jid: str, job, timeout: float):
        controller = self.runtime.controller
        if controller is None:
            raise JobError("service-unavailable", "the XMPP controller is not connected")
        return await controller.send_job(jid, job, timeout)


@register("monitoring")
def build(cfg: Config, runtime: Runtime) -> Monitoring:
    return Monitoring(cfg, runtime)
