"""The app server component: the API over HTTP on `[appserver].listen:port`, with uvicorn.

Serves every service through the transports named in `[appserver].transports`, the
OpenAPI document, `/api/v1/health` (200 when every component runs, 503 otherwise, for
probes), `/metrics`, and — when `[http]` is enabled — the boot files under /assets/.
"""

import contextlib
import logging
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.api.app import make_app
from appliance.api.auth import Guard
from appliance.api.dispatch import Dispatcher
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.runner import Component
from appliance.services import store_of
from appliance.services.events import Events
from appliance.services.machines import Machines
from appliance.services.system import System
from netservices.sockets import listen

log = logging.getLogger("appliance.appserver")

GRACE = 3  # seconds open requests get to finish at stop, within the runner's 5 s


def services(runtime: Runtime) -> list:
    """Every service of the app server; a new service is one more line here."""
    store = store_of(runtime)
    return [Machines(store), Events(store), System(runtime.status)]


def build_app(cfg: Config, runtime: Runtime):
    app_cfg = cfg.appserver
    guard = Guard(app_cfg.read_open, app_cfg.token, app_cfg.username, app_cfg.password)
    dispatcher = Dispatcher(services(runtime), guard)
    system = System(runtime.status)

    async def health(request: Request) -> JSONResponse:
        body = system.health()
        return JSONResponse(body, 200 if body["status"] == "ok" else 503)

    assets = Path(cfg.http.root) if cfg.http.enabled and not cfg.http.nginx else None
    return make_app(dispatcher, list(app_cfg.transports), assets, [Route("/api/v1/health", health)])


class _Server(uvicorn.Server):
    def capture_signals(self):
        return contextlib.nullcontext()  # the supervisor owns SIGTERM/SIGINT


class AppServer(Component):
    name = "appserver"

    def __init__(self, host: str, port: int, app):
        self.host, self.port, self.app = host, port, app
        self._sock = None
        self._server: _Server | None = None

    async def start(self) -> None:
        self._sock = listen("tcp", self.host, self.port)
        log.info("appserver.listening", extra=fields(address=f"{self.host}:{self.port}"))

    async def serve(self) -> None:
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=GRACE)
        self._server = _Server(config)
        try:
            await self._server.serve(sockets=[self._sock])
        finally:
            self._server = None
            self._close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True  # serve() drains and returns
        else:
            self._close()

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@register("appserver")
def build(cfg: Config, runtime: Runtime) -> AppServer:
    return AppServer(str(cfg.appserver.listen), cfg.appserver.port, build_app(cfg, runtime))
