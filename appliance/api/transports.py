"""The transports of the app server: REST (JSON), XML-RPC and AMF, each a plug-in.

A transport is a function `(dispatcher) -> list of Starlette routes`, registered by name
with `@transport("name")`; adding one needs no change to any service. Every transport
reads at most MAX_BODY bytes, takes credentials from the Authorization header, calls
`Dispatcher.call` and maps `ApiError` through dispatch.ERRORS. Bodies that do not parse
get a 400-class answer, never a 500.
"""

import json
import xmlrpc.client
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.api import amf, auth
from appliance.api.dispatch import ERRORS, ApiError, Dispatcher

MAX_BODY = 1 << 20
TRANSPORTS: dict[str, Callable[[Dispatcher], list[Route]]] = {}


def transport(name: str):
    def add(fn):
        TRANSPORTS[name] = fn
        return fn

    return add


async def read_body(request: Request) -> bytes:
    """The request body, or ApiError (413 as bad_request) past MAX_BODY bytes."""
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError("bad_request", f"body larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError("bad_request", f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def credentials(request: Request) -> auth.Credentials | None:
    return auth.from_header(request.headers.get("authorization"))


# --- REST ---------------------------------------------------------------------------

def error_response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="appliance"'} if exc.kind == "unauthorized" else None
    return JSONResponse({"error": {"kind": exc.kind, "message": exc.message}}, exc.status, headers)


@transport("rest")
def rest_routes(dispatcher: Dispatcher) -> list[Route]:
    """One route per path, choosing the method by verb (so 405 answers list every verb)."""
    by_path: dict[str, dict[str, str]] = {}
    for method in dispatcher.methods.values():
        verb, path = method.http
        by_path.setdefault(f"/api/v1{path}", {})[verb] = method.name
    return [Route(path, _rest_endpoint(dispatcher, verbs), methods=list(verbs))
            for path, verbs in by_path.items()]


def _rest_endpoint(dispatcher: Dispatcher, verbs: dict[str, str]):
    async def endpoint(request: Request) -> Response:
        verb = "GET" if request.method == "HEAD" else request.method
        try:
            args = {**await _rest_args(request, verb), **request.path_params}
            return JSONResponse(await dispatcher.call(verbs[verb], args, credentials(request)))
        except ApiError as exc:
            return error_response(exc)

    return endpoint


async def _rest_args(request: Request, verb: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in args:
            raise ApiError("invalid_params", f"query parameter {key!r} given twice")
        args[key] = value
    if verb in ("GET", "DELETE", "HEAD"):
        return args
    body = await read_body(request)
    if not body.strip():
        return args
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("bad_request", "body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError("bad_request", "body must be a JSON object of arguments")
    return {**args, **data}


# --- XML-RPC ------------------------------------------------------------------------

class _Marshaller(xmlrpc.client.Marshaller):
    """The standard marshaller, writing integers past 32 bits as <i8> (which
    xmlrpc.client and most clients read) instead of refusing them."""

    dispatch = dict(xmlrpc.client.Marshaller.dispatch)

    def dump_long(self, value, write):
        tag = "int" if -(2**31) <= value < 2**31 else "i8"
        write(f"<value><{tag}>{int(value)}</{tag}></value>\n")

    dispatch[int] = dump_long


def _xml_reply(body: str) -> Response:
    return Response(f"<?xml version='1.0'?>\n<methodResponse>\n{body}</methodResponse>\n",
                    media_type="text/xml")


def _fault(code: int, message: str, status: int = 200) -> Response:
    response = _xml_reply(_Marshaller("utf-8", allow_none=True).dumps(
        xmlrpc.client.Fault(code, message)))
    response.status_code = status
    return response


@transport("xmlrpc")
def xmlrpc_routes(dispatcher: Dispatcher) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await read_body(request)
        except ApiError as exc:
            return _fault(ERRORS[exc.kind][1], exc.message, 413)
        if b"<!doctype" in body.lower():  # entity expansion and external entities live there
            return _fault(-32600, "document type declarations are not allowed", 400)
        try:
            params, name = xmlrpc.client.loads(body, use_builtin_types=True)
        except Exception as exc:  # noqa: BLE001 - whatever the parser trips on, it is not XML-RPC
            return _fault(-32700, f"parse error: {type(exc).__name__}", 400)
        if not name:
            return _fault(-32600, "not a methodCall", 400)
        try:
            result = await dispatcher.call(name, list(params), credentials(request))
        except ApiError as exc:
            return _fault(ERRORS[exc.kind][1], exc.message)
        data = _Marshaller("utf-8", allow_none=True).dumps((result,))
        return _xml_reply(f"<params>\n{data}</params>\n")

    return [Route("/RPC2", endpoint, methods=["POST"])]


# --- AMF ----------------------------------------------------------------------------

AMF_TYPE = "application/x-amf"


@transport("amf")
def amf_routes(dispatcher: Dispatcher) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        try:
            env = amf.decode_envelope(await read_body(request))
        except (amf.AmfError, ApiError) as exc:
            return Response(f"not an AMF request: {exc}\n", 400, media_type="text/plain")
        cred = credentials(request) or _amf_credentials(env.headers.get("Credentials"))
        answers = [await _amf_answer(dispatcher, msg, cred) for msg in env.messages]
        return Response(amf.encode_envelope(amf.Envelope(env.version, {}, answers)),
                        media_type=AMF_TYPE)

    return [Route("/amf", endpoint, methods=["POST"])]


def _amf_credentials(header: Any) -> auth.Credentials | None:
    if isinstance(header, dict) and "userid" in header:
        return auth.Credentials(username=str(header["userid"]), password=str(header.get("password", "")))
    return None


async def _amf_answer(dispatcher: Dispatcher, msg: amf.Message, cred) -> amf.Message:
    args = msg.body if isinstance(msg.body, list) else [msg.body]
    try:
        result = await dispatcher.call(msg.target, args, cred)
    except ApiError as exc:
        fault = {"level": "error", "code": ERRORS[exc.kind][2], "faultCode": ERRORS[exc.kind][2],
                 "faultString": exc.message, "description": exc.message, "status": exc.status}
        return amf.Message(f"{msg.response}/onStatus", "null", fault)
    return amf.Message(f"{msg.response}/onResult", "null", result)


def enabled(names: list[str], dispatcher: Dispatcher) -> list[Route]:
    """The routes of the named transports; ValueError names an unknown one."""
    unknown = [n for n in names if n not in TRANSPORTS]
    if unknown:
        raise ValueError(f"unknown transport {unknown[0]!r} (known: {', '.join(TRANSPORTS)})")
    return [route for name in names for route in TRANSPORTS[name](dispatcher)]

