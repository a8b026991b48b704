"""The app server component: HTTP on `[appserver].listen:port`, served by uvicorn.

For now it serves the appliance's health (`/api/v1/health`) and its Prometheus metrics
(`/metrics`); the API services, transports and boot scripts plug in here later.
"""

import contextlib
import logging

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance import __version__
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.runner import Component
from netservices.sockets import listen

log = logging.getLogger("appliance.appserver")

GRACE = 3  # seconds open requests get to finish at stop, within the runner's 5 s


def make_app(runtime: Runtime) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        components = runtime.status()
        ok = all(c["state"] == "running" for c in components.values())
        body = {"status": "ok" if ok else "degraded", "version": __version__,
                "components": components}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/api/v1/health", health), Route("/metrics", metrics)])


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
    return AppServer(str(cfg.appserver.listen), cfg.appserver.port, make_app(runtime))
