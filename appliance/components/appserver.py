"""The app server component: the API over HTTP on `[appserver].listen:port`, with uvicorn.

Serves every service through the transports named in `[appserver].transports`, the
OpenAPI document, `/api/v1/health` (200 when every component runs, 503 otherwise, for
probes), `/metrics`, and — when `[http]` is enabled — the boot files under /assets/.
"""

import asyncio
import contextlib
import logging
import re
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from appliance import boot
from appliance.api.app import make_app
from appliance.api.auth import Guard
from appliance.api.dispatch import Dispatcher
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.fabric.accounts import controller_jid
from appliance.inventory import find_machine
from appliance.log import fields
from appliance.monitoring.export import SampleCollector
from appliance.osis.kv import StoreError
from appliance.runner import Component
from appliance.services import store_of
from appliance.services.enroll import Enroll, EnrollSettings
from appliance.services.events import Events
from appliance.services.jobs import Jobs
from appliance.services.machines import Machines
from appliance.services.system import System
from netservices.sockets import listen

log = logging.getLogger("appliance.appserver")

GRACE = 3  # seconds open requests get to finish at stop, within the runner's 5 s
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def services(cfg: Config, runtime: Runtime) -> list:
    """Every service of the app server; a new service is one more line here."""
    store = store_of(runtime)
    settings = EnrollSettings(cfg.node.domain, cfg.appserver.enroll_hostname,
                              cfg.appserver.enroll_action, f"{cfg.xmpp.host}:{cfg.xmpp.port}",
                              controllers=(controller_jid(cfg),))
    return [Machines(store), Events(store), System(runtime.status), Enroll(store, settings), Jobs(store)]


def build_app(cfg: Config, runtime: Runtime):
    app_cfg = cfg.appserver
    guard = Guard(app_cfg.read_open, app_cfg.token, app_cfg.username, app_cfg.password,
                  app_cfg.enroll_token)
    dispatcher = Dispatcher(services(cfg, runtime), guard)
    system = System(runtime.status)

    async def health(request: Request) -> JSONResponse:
        body = system.health()
        return JSONResponse(body, 200 if body["status"] == "ok" else 503)

    assets = Path(cfg.http.root) if cfg.http.enabled and not cfg.http.nginx else None
    routes = [Route("/api/v1/health", health), Route("/boot/ipxe", _boot_route(cfg, runtime))]
    samples = SampleCollector(store_of(runtime))  # the monitoring samples in OSIS, at /metrics
    return make_app(dispatcher, list(app_cfg.transports), assets, routes, [samples])


def _boot_route(cfg: Config, runtime: Runtime):
    own = boot.public_server(cfg)

    async def ipxe(request: Request) -> PlainTextResponse:
        host = request.headers.get("host", "")
        server = host if _HOST.fullmatch(host) else own  # it goes into a script: no odd bytes
        mac = boot.normalize_mac(request.query_params.get("mac"))
        machine = None
        if mac is not None:
            try:
                found = await asyncio.to_thread(find_machine, store_of(runtime)(), "mac", mac)
                machine = found.obj if found else None
            except StoreError as exc:
                log.error("boot.unavailable", extra=fields(mac=mac, error=exc))
                return PlainTextResponse("#!ipxe\necho appliance unavailable\nsleep 10\nreboot\n", 503)
        log.info("boot.script", extra=fields(mac=mac, known=machine is not None, server=server))
        return PlainTextResponse(boot.ipxe_script(server, mac, machine, cfg.appserver.enroll_token))

    return ipxe


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
