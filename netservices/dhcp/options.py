"""DHCP option codes (RFC 2132, RFC 4578, iPXE) and their encoding into reply bytes."""

import struct
from collections.abc import Iterable
from ipaddress import IPv4Address

SUBNET_MASK, ROUTER, DNS, HOSTNAME, DOMAIN = 1, 3, 6, 12, 15
BROADCAST_ADDR, NTP, VENDOR_OPTS = 28, 42, 43
REQUESTED_IP, LEASE_TIME, MESSAGE_TYPE, SERVER_ID, PARAM_LIST = 50, 51, 53, 54, 55
MESSAGE, RENEWAL, REBINDING, VENDOR_CLASS, CLIENT_ID = 56, 58, 59, 60, 61
TFTP_SERVER, BOOTFILE, USER_CLASS, CLIENT_ARCH, CLIENT_NDI, CLIENT_UUID = 66, 67, 77, 93, 94, 97
RELAY_AGENT, IPXE_ENCAP = 82, 175
IPXE_NO_PXEDHCP = 176  # sub-option of 175: 1 = do not wait for ProxyDHCP offers

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
NAMES = {DISCOVER: "discover", OFFER: "offer", REQUEST: "request", DECLINE: "decline",
         ACK: "ack", NAK: "nak", RELEASE: "release", INFORM: "inform"}

# Options sent first, in this order; the rest follow by code. Option 82 goes last
# (RFC 3046 2.0: the relay agent information option is the last one before end).
_FIRST = (MESSAGE_TYPE, SERVER_ID)


def ip(address: IPv4Address) -> bytes:
    return address.packed


def ips(addresses: Iterable[IPv4Address]) -> bytes:
    return b"".join(a.packed for a in addresses)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def text(value: str) -> bytes:
    return value.encode("utf-8")


def sub(code: int, value: bytes) -> bytes:
    """One sub-option (option 43, 175): code, length, value."""
    return bytes((code, len(value))) + value


def pack(msg_type: int, options: dict[int, bytes]) -> bytes:
    """Options as TLVs: 53 first, 82 last; values over 255 bytes split (RFC 3396)."""
    out = [bytes((MESSAGE_TYPE, 1, msg_type))]
    order = [c for c in _FIRST if c in options and c != MESSAGE_TYPE]
    order += sorted(c for c in options if c not in _FIRST and c != RELAY_AGENT)
    order += [RELAY_AGENT] if RELAY_AGENT in options else []
    for code in order:
        value = options[code]
        for start in range(0, max(len(value), 1), 255):
            chunk = value[start:start + 255]
            out.append(bytes((code, len(chunk))) + chunk)
    return b"".join(out)
