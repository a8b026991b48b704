"""SMB2 bytes the server handles itself: framing, the READ fast path, negotiate tweaks.

impacket builds every reply through its pure-Python `Structure` classes and copies the
data several times on its way out (command, packet, compound join, NetBIOS frame); at
its 64 KiB read size that bounds one client to about 80 MB/s. READ, the one request a
media share lives on, is parsed and answered here with `struct`, and its data goes to
the socket with the header in one `sendmsg` — no copy in Python. Everything else goes
through impacket.
"""

import hashlib
import hmac
import struct

PROTOCOL_SMB2 = b"\xfeSMB"
PROTOCOL_SMB1 = b"\xffSMB"
SMB1_NEGOTIATE = 0x72

# MS-SMB2 2.2.1.2: the sync header.
HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
READ_REQUEST = struct.Struct("<HBBIQ16sIIIHH")  # 2.2.19, without its Buffer
READ_RESPONSE = struct.Struct("<HBBIII")  # 2.2.20, before the data
COMMAND_READ = 0x0008
FLAGS_SERVER_TO_REDIR = 0x1
FLAGS_ASYNC = 0x2
FLAGS_RELATED = 0x4
FLAGS_SIGNED = 0x8
DIALECT_202 = 0x0202
DIALECT_21 = 0x0210
DIALECT_WILDCARD = 0x02FF
CAP_LARGE_MTU = 0x4
# Largest read/write/transact offered with SMB 2.1's large MTU (MS-SMB2 3.3.5.4).
MAX_IO = 1024 * 1024
MAX_FRAME = MAX_IO + 64 * 1024
NBSS_MESSAGE = 0x00
NBSS_REQUEST = 0x81
NBSS_POSITIVE = 0x82
NBSS_KEEPALIVE = 0x85


class Malformed(Exception):
    """Bytes from a client that are not an SMB message this server accepts."""


def frame(length: int) -> bytes:
    """The 4-byte NetBIOS session / direct-TCP header of a message (RFC 1002 4.3.1)."""
    return struct.pack(">I", length)


def parse_frame_header(header: bytes) -> tuple[int, int]:
    """(type, length) of a session message header; Malformed when it is too long."""
    kind, length = header[0], int.from_bytes(header[1:4], "big")
    if length > MAX_FRAME:
        raise Malformed(f"message of {length} bytes")
    return kind, length


def check_protocol(data: bytes) -> None:
    """SMB2 only: an SMB1 message is accepted just as a NEGOTIATE that offers SMB2."""
    if data[:4] == PROTOCOL_SMB2 and len(data) >= HEADER.size:
        return
    if data[:4] == PROTOCOL_SMB1 and len(data) > 4 and data[4] == SMB1_NEGOTIATE \
            and b"\x02SMB 2." in data:
        return
    raise Malformed("not SMB2")


def choose_dialect(offered: list[int], smb1_upgrade: bool) -> int:
    """2.1 (large reads) when offered, else 2.0.2; an SMB1 negotiate that offers
    "SMB 2.???" gets the wildcard, so that the client negotiates again (MS-SMB2 3.3.5.3.1)."""
    if smb1_upgrade:
        return DIALECT_WILDCARD if DIALECT_21 in offered else DIALECT_202
    return DIALECT_21 if DIALECT_21 in offered else DIALECT_202


def read_request(data: bytes) -> tuple[tuple, tuple] | None:
    """(header fields, read fields) of a lone SMB2 READ, or None for anything else."""
    if len(data) < HEADER.size + READ_REQUEST.size:
        return None
    header = HEADER.unpack_from(data)
    if header[4] != COMMAND_READ or header[7] != 0 or header[6] & (FLAGS_ASYNC | FLAGS_RELATED):
        return None
    return header, READ_REQUEST.unpack_from(data, HEADER.size)


def read_response(header: tuple, session_id: int, payload: bytes, key: bytes | None) -> list:
    """Buffers of the reply to READ `header` carrying `payload`, signed with `key`
    (HMAC-SHA256, MS-SMB2 3.1.4.1) when the session signs."""
    _, _, charge, _, _, credits, _, _, message_id, pid, tree_id, _, _ = header
    flags = FLAGS_SERVER_TO_REDIR | (FLAGS_SIGNED if key else 0)
    body = READ_RESPONSE.pack(17, HEADER.size + READ_RESPONSE.size, 0, len(payload), 0, 0)
    fields = [PROTOCOL_SMB2, 64, charge, 0, COMMAND_READ, max(credits, 1), flags, 0,
              message_id, pid, tree_id, session_id, b"\x00" * 16]
    if key:
        mac = hmac.new(key, HEADER.pack(*fields) + body, hashlib.sha256)
        mac.update(payload)
        fields[-1] = mac.digest()[:16]
    head = HEADER.pack(*fields) + body
    return [frame(len(head) + len(payload)) + head, payload]
