"""Answer IPv6 router solicitations on the boot segment, so that iPXE does not wait.

After DHCPv4, iPXE waits about 13 s for an IPv6 router advertisement unless one
arrives. A router advertisement with router lifetime 0 and no prefix (RFC 4861 4.2)
ends that wait and tells every host that we are not a router: it changes nobody's
routes. It is sent only in answer to a solicitation, to the soliciting host.
"""

import asyncio
import logging
import socket
import struct

log = logging.getLogger("netservices.dhcp.ra")

RS, RA = 133, 134
ALL_ROUTERS = "ff02::2"
ALL_NODES = "ff02::1"
# type, code, checksum (the kernel fills it in), cur hop limit, flags, router lifetime,
# reachable time, retrans timer: all zero = "unspecified", "not a default router".
ADVERTISEMENT = struct.pack("!BBHBBHII", RA, 0, 0, 0, 0, 0, 0, 0)


def is_solicitation(data: bytes) -> bool:
    """RFC 4861 6.1.1: ICMPv6 type 133, code 0, at least 8 bytes."""
    return len(data) >= 8 and data[0] == RS and data[1] == 0


class RouterAdvertiser:
    """Raw ICMPv6 socket on `interface`; answers each solicitation with `ADVERTISEMENT`."""

    def __init__(self, interface: str):
        self.interface = interface
        self.answered = 0
        self._sock: socket.socket | None = None

    def start(self) -> None:
        ifindex = socket.if_nametoindex(self.interface)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            # RFC 4861 6.1.2: hosts drop advertisements whose hop limit is not 255
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            group = socket.inet_pton(socket.AF_INET6, ALL_ROUTERS) + struct.pack("@I", ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)

    def stop(self) -> None:
        if self._sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            except RuntimeError:
                pass
            self._sock.close()
            self._sock = None

    def _on_readable(self) -> None:
        for _ in range(64):
            try:
                data, peer = self._sock.recvfrom(1500)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("ra.recv_failed", extra={"fields": {"error": exc}})
                return
            if is_solicitation(data):
                self._advertise(peer)

    def _advertise(self, peer) -> None:
        source = peer[0].split("%")[0]
        dest = ALL_NODES if source in ("::", "") else source  # RFC 4861 6.2.6
        try:
            self._sock.sendto(ADVERTISEMENT, (dest, 0, 0, socket.if_nametoindex(self.interface)))
        except OSError as exc:
            log.warning("ra.send_failed", extra={"fields": {"dest": dest, "error": exc}})
            return
        self.answered += 1
