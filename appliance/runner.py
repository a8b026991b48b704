"""The supervisor behind `appliance run`: starts components, restarts crashed ones, stops all.

A component is one service of the appliance (DHCP, DNS, the app server, …). Its life is
`start()` (acquire: bind sockets, open stores — a failure here at start-up stops the
appliance with a clear message), `serve()` (run until `stop()` is called; raising or
returning early is a crash, restarted with exponential backoff) and `stop()` (make
`serve()` return and release what `start()` took). A crash of one component is logged
with its traceback and never takes the others down.
"""

import abc
import asyncio
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from appliance.log import fields

log = logging.getLogger("appliance.runner")

RESTARTS = Counter("appliance_component_restarts", "Restarts after a crash", ["component"])
UP = Gauge("appliance_component_up", "1 while the component is serving", ["component"])


class Component(abc.ABC):
    """One supervised service. Subclasses set `name` and implement `serve`."""

    name: str = "component"

    async def start(self) -> None:  # noqa: B027 - an optional hook
        """Acquire resources. An exception here at start-up is fatal."""

    @abc.abstractmethod
    async def serve(self) -> None:
        """Serve until `stop()` is called."""

    async def stop(self) -> None:  # noqa: B027 - an optional hook
        """Make `serve()` return and release resources; safe to call twice."""


class StartupError(Exception):
    """A component could not start; the message says which and why."""

    def __init__(self, component: str, cause: BaseException):
        super().__init__(f"{component}: {cause}")
        self.component = component


@dataclass
class Backoff:
    """Delay before restart: doubles per crash, reset once a run lasted `healthy_after`."""

    initial: float = 0.5
    maximum: float = 30.0
    healthy_after: float = 60.0
    _next: float = field(default=0.0, init=False)

    def delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after or not self._next:
            self._next = self.initial
        current, self._next = self._next, min(self._next * 2, self.maximum)
        return current


@dataclass
class _State:
    state: str = "starting"
    restarts: int = 0
    last_error: str | None = None


class Supervisor:
    """Runs components until asked to stop; see the module docstring."""

    def __init__(self, components: list[Component], *, backoff: Backoff | None = None,
                 stop_timeout: float = 5.0):
        self.components = components
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.states = {c.name: _State() for c in components}
        self._stopping = False

    def status(self) -> dict[str, dict]:
        """Each component's state ("starting", "running", "restarting", "stopped")."""
        return {name: vars(s).copy() for name, s in self.states.items()}

    async def run(self, stop: asyncio.Event) -> bool:
        """Start everything, serve until `stop` is set, stop everything.

        Raises StartupError when a component cannot start (the others are stopped
        first). Returns False when some component did not stop within the timeout.
        """
        await self._start_all()
        tasks = [asyncio.create_task(self._supervise(c), name=c.name) for c in self.components]
        await stop.wait()
        log.info("appliance.stopping", extra=fields(components=len(tasks)))
        return await self._stop_all(tasks)

    async def _start_all(self) -> None:
        started: list[Component] = []
        for comp in self.components:
            try:
                await comp.start()
            except Exception as exc:
                log.error("component.start_failed", extra=fields(component=comp.name, error=exc))
                await asyncio.gather(*(self._release(c) for c in started))
                raise StartupError(comp.name, exc) from exc
            started.append(comp)
            self._mark(comp, "running")

    async def _supervise(self, comp: Component) -> None:
        state = self.states[comp.name]
        while not self._stopping:
            began = time.monotonic()
            try:
                await comp.serve()
                if self._stopping:
                    return
                raise RuntimeError("serve() returned without being stopped")
            except Exception as exc:
                if self._stopping:
                    return
                state.last_error = f"{type(exc).__name__}: {exc}"
                log.error("component.crashed", exc_info=True, extra=fields(component=comp.name))
            await self._restart(comp, time.monotonic() - began)

    async def _restart(self, comp: Component, ran_for: float) -> None:
        self._mark(comp, "restarting")
        await self._release(comp)
        while not self._stopping:
            delay = self.backoff.delay(ran_for)
            log.info("component.restarting", extra=fields(component=comp.name, delay=delay))
            await asyncio.sleep(delay)
            try:
                await comp.start()
            except Exception:
                log.error("component.start_failed", exc_info=True,
                          extra=fields(component=comp.name))
                ran_for = 0.0
                continue
            self.states[comp.name].restarts += 1
            RESTARTS.labels(comp.name).inc()
            self._mark(comp, "running")
            return

    async def _stop_all(self, tasks: list[asyncio.Task]) -> bool:
        self._stopping = True
        for comp, task in zip(self.components, tasks, strict=True):
            if self.states[comp.name].state != "running":
                task.cancel()  # waiting out a backoff delay or restarting: nothing to drain
        releases = [asyncio.create_task(self._release(c), name=c.name) for c in self.components]
        done, pending = await asyncio.wait(releases + tasks, timeout=self.stop_timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=0.5)
            late = sorted({t.get_name() for t in pending})
            log.error("appliance.stop_timeout", extra=fields(components=",".join(late)))
        for comp in self.components:
            self._mark(comp, "stopped")
        return not pending

    async def _release(self, comp: Component) -> None:
        try:
            await comp.stop()
        except Exception:
            log.error("component.stop_failed", exc_info=True, extra=fields(component=comp.name))

    def _mark(self, comp: Component, state: str) -> None:
        self.states[comp.name].state = state
        UP.labels(comp.name).set(1 if state == "running" else 0)
        log.info(f"component.{state}", extra=fields(component=comp.name))
