"""DHCPv4 on the wire: scapy parses requests into `Request`, `encode` packs a `Reply`.

scapy is the codec of client messages and lives only here. Anything it raises, and
anything it hands back that does not have the shape a DHCP message needs, becomes
`Malformed`: the server counts and drops those, it never answers garbage. Replies are
packed with struct (scapy builds only ~3,000 replies/s) and padded to the 300-byte
BOOTP minimum (RFC 1542 2.1), which some PXE ROMs insist on.
"""

import struct
import uuid as uuidlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netservices.dhcp import options as opt

BOOTREQUEST, BOOTREPLY = 1, 2
BOOTP_MIN = 300
BROADCAST_FLAG = 0x8000
ZERO = IPv4Address(0)
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")

# scapy option names -> RFC 2132 codes, for the options this server reads.
_NAMES = {
    "message-type": opt.MESSAGE_TYPE, "requested_addr": opt.REQUESTED_IP,
    "server_id": opt.SERVER_ID, "param_req_list": opt.PARAM_LIST,
    "vendor_class_id": opt.VENDOR_CLASS, "client_id": opt.CLIENT_ID,
    "user_class": opt.USER_CLASS, "pxe_client_architecture": opt.CLIENT_ARCH,
    "pxe_client_machine_identifier": opt.CLIENT_UUID,
    "relay_agent_information": opt.RELAY_AGENT, "hostname": opt.HOSTNAME,
}


class Malformed(ValueError):
    """The bytes are not a DHCP request this server can read."""


@dataclass(frozen=True, slots=True)
class Request:
    """One client message, decoded; `peer`/`local`/`port` say where it came from."""

    msg_type: int
    xid: int
    chaddr: bytes
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    requested_ip: IPv4Address | None = None
    server_id: IPv4Address | None = None
    param_list: tuple[int, ...] = ()
    vendor_class: bytes = b""
    client_id: bytes = b""
    user_class: bytes = b""
    hostname: str = ""
    arch: int | None = None
    uuid: str | None = None
    relay_info: bytes | None = None
    peer: tuple[str, int] = ("0.0.0.0", 68)
    local: IPv4Address | None = None
    port: int = 67
    mac: str = ""
    """chaddr as lower-case colon-separated hex, the key of leases and reservations."""

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)


@dataclass(slots=True)
class Reply:
    """One server message and where it goes; `arp` asks the shell to unicast to a MAC."""

    msg_type: int
    request: Request
    dest: tuple[str, int]
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    ciaddr: IPv4Address = ZERO
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)
    arp: bool = False
    flags: int | None = None


def load_codec() -> None:
    """Import scapy's DHCP layer now (≈0.5 s), not while the first client waits."""
    import scapy.layers.dhcp  # noqa: F401


def parse(data: bytes, *, peer: tuple[str, int] = ("0.0.0.0", 68),
          local: IPv4Address | None = None, port: int = 67) -> Request:
    """Decode one UDP payload; raises Malformed for anything that is not a DHCP request."""
    try:
        return _parse(data, peer, local, port)
    except Malformed:
        raise
    except Exception as exc:  # scapy raises anything: struct.error, IndexError, TypeError…
        raise Malformed(f"{type(exc).__name__}: {exc}") from None


def _parse(data: bytes, peer, local, port) -> Request:
    from scapy.layers.dhcp import BOOTP  # 0.3 s to import: only where packets are read

    if len(data) < 240 or data[236:240] != b"c\x82Sc":
        raise Malformed("too short or no DHCP magic cookie")
    op, htype, hlen, hops, xid, secs, flags, ciaddr, _, _, giaddr, chaddr = \
        _HEADER.unpack_from(data)[:12]
    if op != BOOTREQUEST or not 1 <= hlen <= 16:
        raise Malformed(f"op {op}, hlen {hlen}")
    found = _options(BOOTP(data))
    if opt.MESSAGE_TYPE not in found:
        raise Malformed("no DHCP message type (plain BOOTP)")
    arch = found.get(opt.CLIENT_ARCH)
    return Request(
        msg_type=_int(found[opt.MESSAGE_TYPE]), xid=xid, chaddr=chaddr[:hlen], htype=htype,
        hops=hops, secs=secs, flags=flags, ciaddr=IPv4Address(ciaddr), giaddr=IPv4Address(giaddr),
        requested_ip=_ip(found.get(opt.REQUESTED_IP)), server_id=_ip(found.get(opt.SERVER_ID)),
        param_list=tuple(_int(c) for c in _list(found.get(opt.PARAM_LIST, ()))),
        vendor_class=_bytes(found.get(opt.VENDOR_CLASS, b"")),
        client_id=_bytes(found.get(opt.CLIENT_ID, b"")),
        user_class=_bytes(found.get(opt.USER_CLASS, b"")),
        hostname=_bytes(found.get(opt.HOSTNAME, b"")).decode("ascii", "replace"),
        arch=struct.unpack("!H", _bytes(arch)[:2])[0] if arch is not None else None,
        uuid=normalize_uuid(_bytes(found[opt.CLIENT_UUID])) if opt.CLIENT_UUID in found else None,
        relay_info=_bytes(found[opt.RELAY_AGENT]) if opt.RELAY_AGENT in found else None,
        peer=peer, local=local, port=port, mac=chaddr[:hlen].hex(":"),
    )


def _options(pkt) -> dict[int, object]:
    """The options scapy decoded, by code; the first occurrence wins."""
    from scapy.layers.dhcp import DHCP

    layer = pkt.getlayer(DHCP)
    found: dict[int, object] = {}
    for item in layer.options if layer is not None else ():
        if isinstance(item, bytes):  # scapy's way of saying "the TLVs broke here"
            raise Malformed(f"mangled options at {item[:8]!r}")
        if isinstance(item, tuple) and len(item) >= 2:
            code = _NAMES.get(item[0], item[0]) if isinstance(item[0], str) else item[0]
            if isinstance(code, int):
                found.setdefault(code, item[1] if len(item) == 2 else item[1:])
    return found


def _int(value) -> int:
    if isinstance(value, bytes) and len(value) == 1:
        return value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Malformed(f"not a small integer: {value!r}")


def _bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1")
    raise Malformed(f"not a byte string: {value!r}")


def _list(value) -> list:
    if isinstance(value, bytes):
        return list(value)
    return value if isinstance(value, list | tuple) else [value]


def _ip(value) -> IPv4Address | None:
    if value is None:
        return None
    if isinstance(value, bytes) and len(value) == 4:
        return IPv4Address(value)
    if isinstance(value, str):
        return IPv4Address(value)
    raise Malformed(f"not an IPv4 address: {value!r}")


def normalize_uuid(raw: bytes) -> str | None:
    """Option 97 (type 0 + SMBIOS UUID) as /sys/class/dmi/id/product_uuid spells it.

    SMBIOS stores the first three UUID fields little-endian (SMBIOS 2.6+ 7.2.1); Linux
    prints them swapped back, so this does too. None when the option has no UUID.
    """
    if len(raw) != 17 or raw[0] != 0:
        return None
    return str(uuidlib.UUID(bytes_le=raw[1:]))


def encode(reply: Reply) -> bytes:
    """The reply as a UDP payload: BOOTP header, magic cookie, options, end, padding."""
    req = reply.request
    header = _HEADER.pack(
        BOOTREPLY, req.htype, len(req.chaddr), 0, req.xid, 0,
        req.flags if reply.flags is None else reply.flags,
        reply.ciaddr.packed, reply.yiaddr.packed, reply.siaddr.packed, req.giaddr.packed,
        req.chaddr, b"", reply.file,
    )
    body = header + b"c\x82Sc" + opt.pack(reply.msg_type, reply.options) + b"\xff"
    return body.ljust(BOOTP_MIN, b"\0")
