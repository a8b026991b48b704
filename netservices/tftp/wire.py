"""TFTP packets to and from bytes (RFC 1350, 2347): tftpy's packet classes plus a fast path.

Requests (RRQ/WRQ), OACK and ERROR go through tftpy's packet classes. DATA and ACK, the
packets of every block, are packed and unpacked with `struct` directly: tftpy's ACK
decoder costs ≈2.2 µs against ≈0.1 µs (it logs on every call), which matters at 15,000+
blocks a second. Anything the codec cannot make sense of — any exception at all from
tftpy included — becomes `Malformed`; the caller counts and drops it, never answers it.
"""

import logging
import struct
from dataclasses import dataclass, field

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketERR, TftpPacketOACK

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

# RFC 1350 error codes (and 8, RFC 2347).
NOT_DEFINED, NOT_FOUND, ACCESS_VIOLATION, DISK_FULL, ILLEGAL_OPERATION, UNKNOWN_TID = range(6)
OPTION_REFUSED = 8

HEADER = struct.Struct("!HH")
_FACTORY = TftpPacketFactory()
# tftpy logs every ERROR packet it decodes at error level: a remote could flood the log.
logging.getLogger("tftpy.TftpPacketTypes").setLevel(logging.CRITICAL)
logging.getLogger("tftpy.TftpPacketFactory").setLevel(logging.CRITICAL)


class Malformed(ValueError):
    """The bytes are not a TFTP packet this codec understands."""


@dataclass(frozen=True)
class Request:
    """An RRQ or WRQ; option names lower-cased (RFC 2347: case-insensitive)."""

    opcode: int
    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True)
class Other:
    """A well-formed DATA or OACK: never expected by a read-only server."""

    opcode: int


def parse_ack(data: bytes) -> int | None:
    """The block number of an ACK, or None when `data` is not an ACK (the hot path)."""
    if len(data) >= 4 and data[0] == 0 and data[1] == ACK:
        return HEADER.unpack_from(data)[1]
    return None


def parse(data: bytes) -> Request | Error | Other | int:
    """Decode one datagram: an ACK's block number (int), a Request, an Error or Other."""
    block = parse_ack(data)
    if block is not None:
        return block
    if len(data) < 4 or data[0] != 0 or not RRQ <= data[1] <= OACK:
        raise Malformed("not a TFTP packet")
    try:
        packet = _FACTORY.parse(bytes(data))
    except Exception as exc:  # tftpy raises TftpException, struct.error, UnicodeError, …
        raise Malformed(f"{type(exc).__name__}: {exc}") from None
    if packet.opcode in (RRQ, WRQ):
        options = {k.lower(): v for k, v in packet.options.items()}
        return Request(packet.opcode, packet.filename, packet.mode.lower(), options)
    if packet.opcode == ERROR:
        message = (packet.errmsg or b"").decode("ascii", "replace")
        return Error(packet.errorcode, message)
    return Other(packet.opcode)


def data_header(block: int) -> bytes:
    """The 4-byte header of DATA block `block` (modulo 2**16, RFC 1350 rollover)."""
    return HEADER.pack(DATA, block & 0xFFFF)


def ack(block: int) -> bytes:
    return HEADER.pack(ACK, block & 0xFFFF)


def oack(options: dict[str, str]) -> bytes:
    """An OACK carrying `options` (RFC 2347)."""
    packet = TftpPacketOACK()
    packet.options = options
    return packet.encode().buffer


def error(code: int, message: str) -> bytes:
    """An ERROR packet; keep `message` short and generic, details go to the log."""
    packet = TftpPacketERR()
    packet.errorcode = code
    packet.errmsgs = {code: message.encode("ascii", "replace")}  # tftpy encodes from this table
    return packet.encode().buffer


def request(filename: str, options: dict[str, str] | None = None, *, opcode: int = RRQ,
            mode: str = "octet") -> bytes:
    """An RRQ/WRQ as a client sends it (for tests and the benchmark)."""
    body = b"".join(s.encode() + b"\0" for s in (filename, mode))
    for name, value in (options or {}).items():
        body += name.encode() + b"\0" + str(value).encode() + b"\0"
    return struct.pack("!H", opcode) + body
