"""Objects to stored bytes and back: Thrift binary inside a verified frame.

thriftpy2's Cython decoder returns an object full of junk for truncated input, and
ignores trailing garbage, so nothing is decoded before the frame is checked:

    b"OS" | format version (1 byte) | type id (1) | payload length (4, BE) | CRC-32 (4, BE) | payload

A value that fails any check raises CorruptValue; it is never returned as an object.
"""

import struct
import zlib

from thriftpy2.protocol import TCyBinaryProtocolFactory
from thriftpy2.utils import deserialize, serialize

from appliance.osis.schema import BY_ID, ObjectType, type_of

MAGIC = b"OS"
FORMAT = 1
HEADER = struct.Struct(">2sBBII")
_PROTOCOL = TCyBinaryProtocolFactory()


class CorruptValue(ValueError):
    """Stored bytes that are not a valid frame of the expected type."""


def encode(obj) -> bytes:
    """The framed bytes of a stored object."""
    return frame(type_of(obj), serialize(obj, _PROTOCOL))


def frame(otype: ObjectType, payload: bytes) -> bytes:
    """Wrap a Thrift binary payload of type `otype` in a frame."""
    return HEADER.pack(MAGIC, FORMAT, otype.type_id, len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes, expected: ObjectType | None = None):
    """The object in a frame; CorruptValue if the frame or its payload is damaged."""
    otype, payload = _unframe(data)
    if expected is not None and otype is not expected:
        raise CorruptValue(f"frame holds a {otype.name}, expected a {expected.name}")
    try:
        return deserialize(otype.cls(), payload, _PROTOCOL)
    except Exception as exc:  # the decoder raises assorted errors on bad input
        raise CorruptValue(f"payload does not decode: {exc}") from None


def _unframe(data: bytes) -> tuple[ObjectType, bytes]:
    if len(data) < HEADER.size:
        raise CorruptValue(f"{len(data)} bytes is shorter than a frame header")
    magic, version, type_id, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptValue("not an OSIS frame (bad magic)")
    if version != FORMAT:
        raise CorruptValue(f"frame format {version} is not supported (this version reads {FORMAT})")
    payload = data[HEADER.size:]
    if len(payload) != length:
        raise CorruptValue(f"payload is {len(payload)} bytes, the frame says {length}")
    if zlib.crc32(payload) != crc:
        raise CorruptValue("checksum mismatch")
    if type_id not in BY_ID:
        raise CorruptValue(f"unknown type id {type_id}")
    return BY_ID[type_id], payload
