"""A small AMF codec: the AMF0 remoting envelope (Flash NetConnection.call) with AMF0 or
AMF3 values in, AMF3 values out.

Byte layouts are those of Adobe's "Action Message Format -- AMF 0" (2006) and "AMF 3"
(2008) specifications; section numbers are given where a rule is implemented. Anything
that does not follow them raises AmfError — never another exception, never a hang: every
length is checked against the bytes that are left, and nesting is bounded.
"""

import datetime
import struct
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64


class AmfError(ValueError):
    """The bytes are not valid AMF."""


class Undefined:
    """AMF's `undefined`, distinct from null (None)."""

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = Undefined()


@dataclass
class Message:
    target: str  # the method, e.g. "machines.get"
    response: str  # where the answer goes, e.g. "/1"
    body: Any


@dataclass
class Envelope:
    version: int = 3
    headers: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos, self.depth = memoryview(data), 0, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise AmfError(f"truncated: need {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos:self.pos + n].tobytes()
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise AmfError(f"nested deeper than {MAX_DEPTH}")

    def utf8(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AmfError(f"string is not UTF-8: {exc}") from None


# --- AMF0 (spec "AMF 0", section 2) -----------------------------------------------------

class _Amf0Decoder:
    def __init__(self, reader: _Reader):
        self.r, self.refs, self.amf3 = reader, [], None

    def string(self) -> str:
        return self.r.utf8(self.r.unpack(">H")[0])  # 2.4 UTF-8 with a u16 length

    def value(self) -> Any:
        marker = self.r.take(1)[0]
        handler = self.HANDLERS.get(marker)
        if handler is None:
            raise AmfError(f"unknown AMF0 marker 0x{marker:02x}")
        self.r.nest()
        try:
            return handler(self)
        finally:
            self.r.depth -= 1

    def _props(self, target: dict) -> dict:
        while True:  # 2.5 object-property until an empty name and object-end (0x09)
            name = self.string()
            if not name:
                if self.r.take(1) != b"\x09":
                    raise AmfError("object does not end with object-end marker")
                return target
            target[name] = self.value()

    def _object(self):
        obj: dict = {}
        self.refs.append(obj)
        return self._props(obj)

    def _typed(self):
        self.string()  # 2.18 class name: values come back as plain dicts
        return self._object()

    def _ecma(self):
        self.r.unpack(">I")  # 2.10 associative count, a hint only
        return self._object()

    def _strict(self):
        (count,) = self.r.unpack(">I")  # 2.12
        if count > len(self.r.data) - self.r.pos:
            raise AmfError(f"array of {count} items is longer than the message")
        items: list = []
        self.refs.append(items)
        items.extend(self.value() for _ in range(count))
        return items

    def _reference(self):
        (index,) = self.r.unpack(">H")  # 2.9
        if index >= len(self.refs):
            raise AmfError(f"reference {index} to an object not yet read")
        return self.refs[index]

    def _date(self):
        millis, _tz = self.r.unpack(">dh")  # 2.13: the time zone is reserved, ignored
        return _date(millis)

    def _amf3(self):
        if self.amf3 is None:
            self.amf3 = _Amf3Decoder(self.r)
        return self.amf3.value()

    HANDLERS = {
        0x00: lambda d: d.r.unpack(">d")[0],
        0x01: lambda d: d.r.take(1) != b"\x00",
        0x02: string,
        0x03: _object,
        0x05: lambda d: None,
        0x06: lambda d: UNDEFINED,
        0x07: _reference,
        0x08: _ecma,
        0x0A: _strict,
        0x0B: _date,
        0x0C: lambda d: d.r.utf8(d.r.unpack(">I")[0]),
        0x10: _typed,
        0x11: _amf3,
    }


def _date(millis: float) -> datetime.datetime:
    try:
        return datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise AmfError(f"date {millis} ms is out of range") from None


# --- AMF3 (spec "AMF 3", section 3) -------------------------------------------------

class _Amf3Decoder:
    def __init__(self, reader: _Reader):
        self.r = reader
        self.strings: list[str] = []
        self.objects: list = []
        self.traits: list[tuple[str, list[str], bool]] = []

    def u29(self) -> int:
        n = 0
        for i in range(4):  # 1.3.1: 7 bits per byte, the 4th byte gives 8
            byte = self.r.take(1)[0]
            if i == 3:
                return (n << 8) | byte
            n = (n << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return n
        return n

    def _ref_or_len(self) -> tuple[bool, int]:
        head = self.u29()
        return bool(head & 1), head >> 1

    def string(self) -> str:
        inline, n = self._ref_or_len()  # 3.8: strings are sent once, then by reference
        if not inline:
            return self._ref(self.strings, n, "string")
        text = self.r.utf8(n)
        if text:
            self.strings.append(text)  # the empty string is never a reference
        return text

    @staticmethod
    def _ref(table: list, index: int, what: str):
        if index >= len(table):
            raise AmfError(f"{what} reference {index} to nothing")
        return table[index]

    def value(self) -> Any:
        marker = self.r.take(1)[0]
        handler = self.HANDLERS.get(marker)
        if handler is None:
            raise AmfError(f"unknown AMF3 marker 0x{marker:02x}")
        self.r.nest()
        try:
            return handler(self)
        finally:
            self.r.depth -= 1

    def _integer(self) -> int:
        n = self.u29()  # 3.6: 29-bit two's complement
        return n - (1 << 29) if n & (1 << 28) else n

    def _date(self):
        inline, index = self._ref_or_len()  # 3.10
        if not inline:
            return self._ref(self.objects, index, "object")
        value = _date(self.r.unpack(">d")[0])
        self.objects.append(value)
        return value

    def _array(self):
        inline, count = self._ref_or_len()  # 3.11: associative part first, then dense
        if not inline:
            return self._ref(self.objects, count, "object")
        if count > len(self.r.data) - self.r.pos:
            raise AmfError(f"array of {count} items is longer than the message")
        assoc: dict = {}
        slot = len(self.objects)
        self.objects.append(assoc)
        while name := self.string():
            assoc[name] = self.value()
        dense = [self.value() for _ in range(count)]
        if not assoc:
            self.objects[slot] = dense
            return dense
        assoc.update(enumerate(dense))
        return assoc

    def _object(self):
        head = self.u29()  # 3.12
        if not head & 1:
            return self._ref(self.objects, head >> 1, "object")
        if not head & 2:
            name, members, dynamic = self._ref(self.traits, head >> 2, "traits")
        else:
            if head & 4:
                raise AmfError("externalizable objects are not supported")
            dynamic = bool(head & 8)
            name = self.string()
            members = [self.string() for _ in range(head >> 4)]
            self.traits.append((name, members, dynamic))
        obj: dict = {}
        self.objects.append(obj)
        for member in members:
            obj[member] = self.value()
        while dynamic and (key := self.string()):
            obj[key] = self.value()
        return obj

    def _bytes(self):
        inline, n = self._ref_or_len()  # 3.14
        if not inline:
            return self._ref(self.objects, n, "object")
        value = self.r.take(n)
        self.objects.append(value)
        return value

    def _xml(self):
        inline, n = self._ref_or_len()  # 3.9 / 3.13: kept as text
        if not inline:
            return self._ref(self.objects, n, "object")
        value = self.r.utf8(n)
        self.objects.append(value)
        return value

    HANDLERS = {
        0x00: lambda d: UNDEFINED, 0x01: lambda d: None, 0x02: lambda d: False,
        0x03: lambda d: True, 0x04: _integer, 0x05: lambda d: d.r.unpack(">d")[0],
        0x06: string, 0x07: _xml, 0x08: _date, 0x09: _array, 0x0A: _object,
        0x0B: _xml, 0x0C: _bytes,
    }


def _u29(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x4000:
        return bytes([n >> 7 | 0x80, n & 0x7F])
    if n < 0x200000:
        return bytes([n >> 14 | 0x80, n >> 7 & 0x7F | 0x80, n & 0x7F])
    if n < 0x20000000:
        return bytes([n >> 22 | 0x80, n >> 15 & 0x7F | 0x80, n >> 8 & 0x7F | 0x80, n & 0xFF])
    raise AmfError(f"{n} does not fit in U29")


def _str3(text: str) -> bytes:
    data = text.encode("utf-8")
    return _u29(len(data) << 1 | 1) + data


def encode3(value: Any) -> bytes:
    """One value in AMF3 (no references are emitted; every decoder accepts that)."""
    if value is None:
        return b"\x01"
    if value is UNDEFINED:
        return b"\x00"
    if isinstance(value, bool):
        return b"\x03" if value else b"\x02"
    if isinstance(value, int) and -(1 << 28) <= value < (1 << 28):
        return b"\x04" + _u29(value & 0x1FFFFFFF)
    if isinstance(value, int | float):
        return b"\x05" + struct.pack(">d", value)
    if isinstance(value, str):
        return b"\x06" + _str3(value)
    if isinstance(value, bytes):
        return b"\x0c" + _u29(len(value) << 1 | 1) + value
    if isinstance(value, datetime.datetime):
        return b"\x08\x01" + struct.pack(">d", value.timestamp() * 1000)
    if isinstance(value, dict):  # an anonymous dynamic object, traits inline
        members = b"".join(_str3(str(k)) + encode3(v) for k, v in value.items())
        return b"\x0a\x0b\x01" + members + b"\x01"
    if isinstance(value, list | tuple):
        return b"\x09" + _u29(len(value) << 1 | 1) + b"\x01" + b"".join(encode3(v) for v in value)
    raise AmfError(f"cannot encode {type(value).__name__}")


def _str0(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise AmfError("envelope string longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def decode_envelope(data: bytes) -> Envelope:
    """An AMF0 remoting packet: version, headers, messages (AMF0 spec section 4)."""
    r = _Reader(data)
    amf0 = _Amf0Decoder(r)
    (version,) = r.unpack(">H")
    env = Envelope(version=version)
    for _ in range(r.unpack(">H")[0]):
        name = amf0.string()
        r.take(1)  # must-understand
        r.unpack(">I")  # length, often -1: the value says how long it is
        amf0.refs, amf0.amf3 = [], None
        env.headers[name] = amf0.value()
    for _ in range(r.unpack(">H")[0]):
        target, response = amf0.string(), amf0.string()
        r.unpack(">I")
        amf0.refs, amf0.amf3 = [], None
        env.messages.append(Message(target, response, amf0.value()))
    if r.pos != len(r.data):
        raise AmfError(f"{len(r.data) - r.pos} bytes after the last message")
    return env


def encode_envelope(env: Envelope) -> bytes:
    """An AMF0 remoting packet whose message bodies are AMF3 values (marker 0x11)."""
    out = [struct.pack(">HH", env.version, len(env.headers))]
    for name, value in env.headers.items():
        body = b"\x11" + encode3(value)
        out.append(_str0(name) + b"\x00" + struct.pack(">I", len(body)) + body)
    out.append(struct.pack(">H", len(env.messages)))
    for msg in env.messages:
        body = b"\x11" + encode3(msg.body)
        out.append(_str0(msg.target) + _str0(msg.response) + struct.pack(">I", len(body)) + body)
    return b"".join(out)
