"""The one dispatcher behind every transport of the app server.

A service is a plain class; the methods it exposes are marked with `@exposed`:

    class Machines:
        name = "machines"

        @exposed(http="GET /machines/{guid}")
        def get(self, guid: str) -> domain.Machine: ...

`Dispatcher.call("machines.get", args, credentials)` checks the credentials, validates
the arguments against the type hints (pydantic, lax: "10" is 10 for query strings),
calls the method in a thread and returns plain JSON-able data. Every failure is an
`ApiError` whose kind maps, in ERRORS, to an HTTP status, an XML-RPC fault code and an
AMF fault code, so that every transport reports the same error the same way.
"""

import asyncio
import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from appliance.api.auth import Credentials, Guard
from appliance.osis.kv import Conflict, Refused, StoreError, Unavailable
from appliance.osis.schema import SchemaError, as_dict
from appliance.osis.store import CorruptObject, NotFound, Stored

log = logging.getLogger("appliance.api")

# kind: (HTTP status, XML-RPC fault code, AMF faultCode)
ERRORS = {
    "invalid_params": (400, -32602, "Client.Data.InvalidParams"),
    "bad_request": (400, -32600, "Client.Data.BadRequest"),
    "unauthorized": (401, 401, "Client.Authentication"),
    "no_such_method": (404, -32601, "Client.NoSuchMethod"),
    "not_found": (404, 404, "Client.NotFound"),
    "conflict": (409, 409, "Client.Conflict"),
    "too_large": (413, 413, "Client.Data.TooLarge"),
    "unavailable": (503, 503, "Server.Unavailable"),
    "internal": (500, -32603, "Server.Internal"),
}


class ApiError(Exception):
    """A call failed; `kind` is a key of ERRORS, the message is safe to show the caller."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message

    @property
    def status(self) -> int:
        return ERRORS[self.kind][0]


def _domain_error(exc: Exception) -> ApiError:
    """Map the store's errors, once, to the API's."""
    for cls, kind in ((NotFound, "not_found"), (Conflict, "conflict"), (SchemaError, "invalid_params"),
                      (Unavailable, "unavailable"), (Refused, "too_large"), (CorruptObject, "internal")):
        if isinstance(exc, cls):
            return ApiError(kind, str(exc))
    return ApiError("internal", "internal error")


def exposed(*, http: str | None = None, writes: bool = False, enroll: bool = False):
    """Expose a service method. `http` is "VERB /path/{param}" for REST (default:
    POST /service/method); `writes` marks calls that need credentials; `enroll` calls
    need credentials too, and also take the enrollment token."""

    def mark(fn):
        fn.__exposed__ = {"http": http, "writes": writes or enroll, "enroll": enroll}
        return fn

    return mark


@dataclass
class Method:
    name: str  # "machines.get"
    fn: Callable
    params: dict[str, inspect.Parameter]
    adapters: dict[str, TypeAdapter]
    returns: Any
    http: tuple[str, str]
    writes: bool
    enroll: bool
    doc: str

    def bind(self, args: list | dict) -> dict[str, Any]:
        """Arguments by name, validated. Positional lists (XML-RPC, AMF) fill parameters in
        order, and a null there means "not given", so that later ones can be passed."""
        if isinstance(args, list):
            if len(args) > len(self.params):
                raise ApiError("invalid_params", f"{self.name} takes at most {len(self.params)} arguments")
            args = {k: v for k, v in zip(self.params, args, strict=False) if v is not None}
        unknown = sorted(set(args) - set(self.params))
        if unknown:
            raise ApiError("invalid_params", f"{self.name}: unknown argument {unknown[0]!r}")
        bound = {}
        for name, param in self.params.items():
            if name in args:
                bound[name] = self._check(name, args[name])
            elif param.default is inspect.Parameter.empty:
                raise ApiError("invalid_params", f"{self.name}: missing argument {name!r}")
        return bound

    def _check(self, name: str, value: Any) -> Any:
        try:
            return self.adapters[name].validate_python(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in (name, *err["loc"]))
            raise ApiError("invalid_params", f"{self.name}: {where}: {err['msg']}") from None


def _method(service, attr: str, fn) -> Method:
    spec = fn.__exposed__
    hints = typing.get_type_hints(fn, include_extras=True)
    params = dict(inspect.signature(fn).parameters)
    name = f"{service.name}.{attr}"
    verb, path = (spec["http"] or f"POST /{service.name}/{attr}").split(" ", 1)
    return Method(name, fn, params, {p: TypeAdapter(hints.get(p, Any)) for p in params},
                  hints.get("return", Any), (verb, path), spec["writes"], spec["enroll"],
                  inspect.getdoc(fn) or "")


def plain(value: Any) -> Any:
    """Results as JSON-able data: Thrift objects become dicts, enums their names; a stored
    object comes with its revision (what an update must name to be accepted)."""
    if isinstance(value, Stored):
        return {**as_dict(value.obj), "revision": value.revision}
    if hasattr(value, "thrift_spec"):
        return as_dict(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return to_jsonable_python(value)


class Dispatcher:
    def __init__(self, services: list, guard: Guard):
        self.guard = guard
        self.methods: dict[str, Method] = {}
        for service in services:
            for attr, fn in inspect.getmembers(service, callable):
                if hasattr(fn, "__exposed__"):
                    method = _method(service, attr, fn)
                    self.methods[method.name] = method

    async def call(self, name: str, args: list | dict, credentials: Credentials | None) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise ApiError("no_such_method", f"no method {name[:100]!r}")
        if not self.guard.allows(method.writes, credentials, method.enroll):
            raise ApiError("unauthorized", "credentials required" if credentials is None
                           else "wrong credentials")
        bound = method.bind(args)
        try:
            return plain(await asyncio.to_thread(method.fn, **bound))
        except ApiError:
            raise
        except (StoreError, SchemaError) as exc:
            raise _domain_error(exc) from None
        except Exception:
            log.error("api.bug", exc_info=True, extra={"fields": {"method": name}})
            raise ApiError("internal", "internal error") from None
