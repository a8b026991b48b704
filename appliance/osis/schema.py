"""The stored object types: their Thrift classes, stable type ids and view columns.

Each type is indexed by the columns it declares here; the views (SQL) hold one row per
object with those columns, plus child rows for multi-valued ones (a machine's MACs).
Type ids are stored in every frame: never change or reuse one.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import thriftpy2

IDL = Path(__file__).with_name("domain.thrift")
domain = thriftpy2.load(str(IDL), module_name="domain_thrift")

GUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SQL_TYPES = ("text", "integer", "real")


class SchemaError(ValueError):
    """An unknown type, column or malformed id: the caller's mistake, said plainly."""


@dataclass(frozen=True)
class Column:
    """One indexed column: its SQL type and how to read it off an object.

    `multi` columns read a list of values and live in a child table.
    """

    name: str
    sql: str
    read: Callable[[Any], Any]
    multi: bool = False


@dataclass(frozen=True)
class ObjectType:
    name: str
    type_id: int
    cls: type
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        known = ", ".join(c.name for c in self.columns)
        raise SchemaError(f"{self.name} has no column {name!r} (columns: {known})")

    def row(self, obj) -> dict[str, Any]:
        """The single-valued column values of `obj`."""
        return {c.name: c.read(obj) for c in self.columns if not c.multi}


def _field(name: str) -> Callable[[Any], Any]:
    return lambda obj: getattr(obj, name)


def _enum(name: str, enum) -> Callable[[Any], Any]:
    names = enum._VALUES_TO_NAMES
    return lambda obj: names.get(getattr(obj, name), str(getattr(obj, name)))


def _columns(*specs) -> tuple[Column, ...]:
    return tuple(spec if isinstance(spec, Column) else Column(spec[0], spec[1], _field(spec[0]))
                 for spec in specs)


def _macs(machine) -> list[str]:
    return sorted({i.mac.lower() for i in machine.interfaces or () if i.mac})


TYPES: dict[str, ObjectType] = {t.name: t for t in (
    ObjectType("machine", 1, domain.Machine, _columns(
        ("hostname", "text"), ("uuid", "text"), ("serial", "text"), ("ip", "text"),
        Column("state", "text", _enum("state", domain.MachineState)),
        ("updated", "real"), Column("mac", "text", _macs, multi=True))),
    ObjectType("lease", 2, domain.Lease, _columns(
        ("ip", "text"), ("mac", "text"), ("ends", "real"), ("machine", "text"),
        Column("state", "text", _enum("state", domain.LeaseState)))),
    ObjectType("dnsrecord", 3, domain.DnsRecord, _columns(
        ("name", "text"), ("rtype", "text"), ("value", "text"), ("machine", "text"))),
    ObjectType("agent", 4, domain.Agent, _columns(
        ("jid", "text"), ("machine", "text"),
        Column("status", "text", _enum("status", domain.AgentStatus)))),
    ObjectType("job", 5, domain.Job, _columns(
        ("agent", "text"), ("workflow", "text"), ("created", "real"),
        Column("state", "text", _enum("state", domain.JobState)))),
    ObjectType("monitorsample", 6, domain.MonitorSample, _columns(
        ("agent", "text"), ("metric", "text"), ("timestamp", "real"))),
    ObjectType("event", 7, domain.Event, _columns(
        ("kind", "text"), ("machine", "text"), ("timestamp", "real"))),
)}
BY_ID = {t.type_id: t for t in TYPES.values()}
BY_CLASS = {t.cls: t for t in TYPES.values()}


def object_type(name: str) -> ObjectType:
    try:
        return TYPES[name.lower()]
    except KeyError:
        raise SchemaError(f"unknown type {name!r} (types: {', '.join(TYPES)})") from None


def type_of(obj) -> ObjectType:
    try:
        return BY_CLASS[type(obj)]
    except KeyError:
        raise SchemaError(f"not a stored object: {type(obj).__name__}") from None


def check_guid(guid: str) -> str:
    if not isinstance(guid, str) or not GUID.fullmatch(guid):
        raise SchemaError(f"malformed id {guid!r}: letters, digits and . _ : - , at most 128")
    return guid


def as_dict(obj) -> dict[str, Any]:
    """A stored object as plain data for JSON: enums by name, nested structs as dicts."""
    out = {}
    for spec in obj.thrift_spec.values():
        value = getattr(obj, spec[1])
        out[spec[1]] = _plain(spec, value)
    return out


def _plain(spec, value):
    ttype, extra = spec[0], spec[2] if len(spec) > 3 else None
    if value is None:
        return None
    if ttype == thriftpy2.thrift.TType.I32 and extra is not None:  # an enum
        return extra._VALUES_TO_NAMES.get(value, value)
    if ttype == thriftpy2.thrift.TType.STRUCT:
        return as_dict(value)
    if ttype == thriftpy2.thrift.TType.LIST:
        return [as_dict(v) if hasattr(v, "thrift_spec") else v for v in value]
    return value
