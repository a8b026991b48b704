"""The OpenAPI 3.1 document of the REST transport, generated from the exposed methods.

Parameter and body schemas come from the type hints (pydantic); stored objects are
described from their Thrift definitions, so the IDL stays the single source.
"""

import re
import typing
from typing import Any

from pydantic import TypeAdapter
from thriftpy2.thrift import TType

from appliance import __version__
from appliance.api.dispatch import ERRORS, Dispatcher, Method

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["kind", "message"],
    "properties": {"kind": {"type": "string", "enum": sorted(ERRORS)}, "message": {"type": "string"}}}}}
_SCALARS = {TType.BOOL: "boolean", TType.BYTE: "integer", TType.I16: "integer", TType.I32: "integer",
            TType.I64: "integer", TType.DOUBLE: "number", TType.STRING: "string"}


def document(dispatcher: Dispatcher) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, dict] = {}
    for method in dispatcher.methods.values():
        verb, path = method.http
        paths.setdefault(f"/api/v1{path}", {})[verb.lower()] = _operation(method, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "PyLabs appliance API", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _operation(method: Method, schemas: dict) -> dict[str, Any]:
    verb, path = method.http
    in_path = set(re.findall(r"{(\w+)}", path))
    params, body, required = [], {}, []
    for name, param in method.params.items():
        schema = _from_adapter(method.adapters[name], schemas)
        must = param.default is param.empty
        if name in in_path:
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        elif verb in ("GET", "DELETE"):
            params.append({"name": name, "in": "query", "required": must, "schema": schema})
        else:
            body[name] = schema
            required += [name] if must else []
    doc = method.doc or method.name
    op: dict[str, Any] = {"operationId": method.name, "summary": doc.splitlines()[0],
                          "description": doc, "parameters": params, "responses": _responses(method, schemas)}
    if body:
        op["requestBody"] = {"required": bool(required), "content": {"application/json": {"schema": {
            "type": "object", "properties": body, "required": required, "additionalProperties": False}}}}
    if method.writes:
        op["security"] = [{"basic": []}, {"bearer": []}]
    return op


def _responses(method: Method, schemas: dict) -> dict[str, Any]:
    ok = {"description": "OK", "content": {"application/json": {
        "schema": _schema(method.returns, schemas)}}}
    error = {"$ref": "#/components/schemas/Error"}
    out = {"200": ok}
    kinds = ["invalid_params", "unauthorized", "not_found", "conflict", "unavailable"]
    for kind in kinds + (["too_large"] if method.writes or method.enroll else []):
        status = str(ERRORS[kind][0])
        out[status] = {"description": kind.replace("_", " "),
                       "content": {"application/json": {"schema": error}}}
    return out


def _schema(tp: Any, schemas: dict) -> dict[str, Any]:
    """A result type's schema; stored objects (Thrift) come with their revision."""
    if hasattr(tp, "thrift_spec"):
        return _thrift_ref(tp, schemas, stored=True)
    if typing.get_origin(tp) is list and hasattr(typing.get_args(tp)[0], "thrift_spec"):
        return {"type": "array", "items": _thrift_ref(typing.get_args(tp)[0], schemas, stored=True)}
    return _from_adapter(TypeAdapter(tp), schemas)


def _from_adapter(adapter: TypeAdapter, schemas: dict) -> dict[str, Any]:
    found = adapter.json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(found.pop("$defs", {}))
    return found


def _thrift_ref(cls, schemas: dict, stored: bool = False) -> dict[str, str]:
    name = cls.__name__
    if name not in schemas:
        schemas[name] = {}  # placeholder first: structs may nest
        props = {spec[1]: _thrift_field(spec, schemas) for spec in cls.thrift_spec.values()}
        if stored:
            props["revision"] = {"type": "integer", "description": "revision in the object store"}
        schemas[name] = {"type": "object", "properties": props}
    return {"$ref": f"#/components/schemas/{name}"}


def _thrift_field(spec: tuple, schemas: dict) -> dict[str, Any]:
    return {"anyOf": [_thrift_type(spec[0], spec[2] if len(spec) > 3 else None, schemas), {"type": "null"}]}


def _thrift_type(ttype: int, extra: Any, schemas: dict) -> dict[str, Any]:
    if ttype == TType.I32 and extra is not None:
        return {"type": "string", "enum": list(extra._NAMES_TO_VALUES)}
    if ttype in _SCALARS:
        return {"type": _SCALARS[ttype]}
    if ttype == TType.STRUCT:
        return _thrift_ref(extra, schemas)
    if ttype in (TType.LIST, TType.SET):
        item = extra if isinstance(extra, tuple) else (extra, None)
        return {"type": "array", "items": _thrift_type(item[0], item[1], schemas)}
    if ttype == TType.MAP:
        value = extra[1] if isinstance(extra[1], tuple) else (extra[1], None)
        return {"type": "object", "additionalProperties": _thrift_type(value[0], value[1], schemas)}
    return {}
