"""The ASGI application of the app server: transports, OpenAPI, metrics and static boot files."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from appliance.api import openapi, transports
from appliance.api.dispatch import Dispatcher

ASSETS = "/assets"


def make_app(dispatcher: Dispatcher, transport_names: list[str], assets: Path | None = None,
             extra_routes: list | None = None, collectors: Sequence = ()) -> Starlette:
    """The app: the named transports, /api/v1/openapi.json, /metrics and, when `assets`
    is a directory, its files under /assets/ (Range requests, no symlinks out of it).
    /metrics exports the process's prometheus_client metrics and those of `collectors`
    (objects with a prometheus_client `collect()`, such as the monitoring samples)."""
    spec = openapi.document(dispatcher)
    exposition = _Exposition([REGISTRY, *collectors])

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    async def metrics(request: Request) -> Response:
        body = await asyncio.to_thread(generate_latest, exposition)  # collectors may read a store
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/api/v1/openapi.json", openapi_json), Route("/metrics", metrics),
              *(extra_routes or []), *transports.enabled(transport_names, dispatcher)]
    if assets is not None:
        routes.append(Mount(ASSETS, StaticFiles(directory=assets, check_dir=False), name="assets"))
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


class _Exposition:
    """Several prometheus_client collectors as one, for generate_latest."""

    def __init__(self, collectors: list):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Routing errors (no such path, wrong verb) as JSON, in the API's error shape."""
    kind = {404: "not_found", 405: "bad_request"}.get(exc.status_code, "bad_request")
    return JSONResponse({"error": {"kind": kind, "message": exc.detail}}, exc.status_code,
                        headers=getattr(exc, "headers", None))
