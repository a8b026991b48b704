"""The DHCP server's asyncio shell: sockets in, `policy.answer` in the middle, replies out.

One UDP socket on 0.0.0.0:PORT bound to the rack interface (SO_BINDTODEVICE), with
SO_BROADCAST, and IP_PKTINFO to learn the address a request reached us on; in proxy
mode a second one on the proxy port (4011). Each time a socket is readable the server
drains a batch of datagrams, decides every reply, commits the batch's lease changes to
the store with one fsync (group commit), and only then sends the replies: an ACK never
leaves before its lease is durable.

A datagram that does not parse is counted and dropped; an exception while answering
one is logged with its traceback and that datagram dropped. The server keeps serving.
"""

import asyncio
import fcntl
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from prometheus_client import Counter

from netservices.dhcp import options as opt
from netservices.dhcp import policy, wire
from netservices.dhcp.config import DhcpConfig
from netservices.dhcp.inventory import Inventory
from netservices.dhcp.leases import LeaseStore
from netservices.dhcp.table import LeaseTable, Pool
from netservices.sockets import BindError

log = logging.getLogger("netservices.dhcp.server")

IP_PKTINFO = 8  # Linux; Python 3.11's socket module lacks the constant
SIOCSARP = 0x8955
ATF_COM = 0x02
BATCH = 256  # datagrams per group commit at most
_PKTINFO = struct.Struct("=I4s4s")
_CMSG_SPACE = socket.CMSG_SPACE(_PKTINFO.size)

RECEIVED = Counter("dhcp_packets_received", "DHCP datagrams received")
REPLIED = Counter("dhcp_replies_sent", "DHCP replies sent", ["type"])
MALFORMED = Counter("dhcp_packets_malformed", "Datagrams dropped because they do not parse")
ERRORS = Counter("dhcp_request_errors", "Requests dropped because answering them failed")


@dataclass
class Stats:
    """This server's counters (the Prometheus ones add up every server of the process)."""

    received: int = 0
    replied: int = 0
    malformed: int = 0
    errors: int = 0
    commits: int = 0


def pools(cfg: DhcpConfig) -> list[Pool]:
    """The local pool (subnet and range) and one pool per relayed subnet."""
    bounds = cfg.pool_bounds() or (None, None)
    local = [Pool(cfg.subnet, *bounds, router=cfg.router)] if cfg.subnet else []
    return local + [Pool(r.subnet, r.first, r.last, r.router) for r in cfg.relays]


class DhcpServer:
    """Serves `cfg` on its interface; leases in `store`, reservations from `inventory`."""

    def __init__(self, cfg: DhcpConfig, store: LeaseStore, inventory: Inventory, *,
                 clock: Callable[[], float] = time.time):
        self.cfg, self.store, self.clock = cfg, store, clock
        self.stats = Stats()
        self.table: LeaseTable | None = None
        self.ctx: policy.Context | None = None
        self._inventory = inventory
        self._socks: list[tuple[socket.socket, int]] = []
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Load the leases and bind the sockets; BindError names what could not be bound."""
        wire.load_codec()
        self.table = LeaseTable(pools(self.cfg), self.store.load())
        self.ctx = policy.Context(self.cfg, self.table, self._inventory)
        ports = [self.cfg.port] + ([self.cfg.proxy_port] if self.cfg.proxy else [])
        try:
            for port in ports:
                self._socks.append((open_socket(self.cfg.interface, port), port))
        except BaseException:
            self._close()
            raise
        loop = asyncio.get_running_loop()
        for sock, port in self._socks:
            loop.add_reader(sock.fileno(), self._on_readable, sock, port)
        self._stopped.clear()
        log.info("dhcp.listening", extra={"fields": {
            "interface": self.cfg.interface, "ports": ",".join(map(str, ports)),
            "leases": len(self.table.by_ip), "proxy": self.cfg.proxy}})

    async def serve(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._close()
        self._stopped.set()

    def _close(self) -> None:
        for sock, _ in self._socks:
            try:
                asyncio.get_running_loop().remove_reader(sock.fileno())
            except (RuntimeError, ValueError):
                pass
            sock.close()
        self._socks = []

    def _on_readable(self, sock: socket.socket, port: int) -> None:
        replies = []
        for _ in range(BATCH):
            try:
                data, ancdata, _flags, peer = sock.recvmsg(4096, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("dhcp.recv_failed", extra={"fields": {"error": exc}})
                break
            reply = self.handle(data, peer, _local_address(ancdata), port)
            if reply is not None:
                replies.append(reply)
        if self._commit():
            for reply in replies:
                self._send(sock, reply)
        else:
            for reply in replies:  # offers and NAKs promise nothing durable
                if reply.msg_type != opt.ACK:
                    self._send(sock, reply)

    def handle(self, data: bytes, peer: tuple[str, int], local: IPv4Address | None,
               port: int) -> wire.Reply | None:
        """One datagram: parse, decide; never raises."""
        self.stats.received += 1
        RECEIVED.inc()
        try:
            req = wire.parse(data, peer=peer, local=local, port=port)
        except wire.Malformed as exc:
            self.stats.malformed += 1
            MALFORMED.inc()
            log.debug("dhcp.malformed", extra={"fields": {"peer": peer[0], "error": exc}})
            return None
        try:
            return policy.answer(req, self.ctx, self.clock())
        except Exception:
            self.stats.errors += 1
            ERRORS.inc()
            log.error("dhcp.request_failed", exc_info=True,
                      extra={"fields": {"peer": peer[0], "mac": req.mac}})
            return None

    def _commit(self) -> bool:
        pending = self.table.take_pending()
        if not pending:
            return True
        try:
            self.store.commit(pending)
        except Exception:
            self.stats.errors += 1
            ERRORS.inc()
            log.error("dhcp.commit_failed", exc_info=True,
                      extra={"fields": {"records": len(pending)}})
            return False
        self.stats.commits += 1
        return True

    def _send(self, sock: socket.socket, reply: wire.Reply) -> None:
        try:
            data = wire.encode(reply)
            dest = reply.dest
            if reply.arp and not _set_arp(sock, self.cfg.interface, reply):
                dest = policy.BROADCAST
            sock.sendto(data, dest)
        except Exception:
            self.stats.errors += 1
            ERRORS.inc()
            log.error("dhcp.send_failed", exc_info=True, extra={"fields": {"dest": reply.dest}})
            return
        self.stats.replied += 1
        REPLIED.labels(opt.NAMES.get(reply.msg_type, "?")).inc()
        _log_reply(reply, dest)


def _log_reply(reply: wire.Reply, dest: tuple[str, int]) -> None:
    """ACKs and NAKs at info (what an operator looks for at night), the rest at debug."""
    level = logging.INFO if reply.msg_type in (opt.ACK, opt.NAK) else logging.DEBUG
    if log.isEnabledFor(level):
        req = reply.request
        log.log(level, f"dhcp.{opt.NAMES.get(reply.msg_type, '?')}", extra={"fields": {
            "mac": req.mac, "ip": reply.yiaddr, "to": f"{dest[0]}:{dest[1]}", "arch": req.arch,
            "uuid": req.uuid, "file": reply.file.decode(errors="replace") or None}})


def open_socket(interface: str, port: int) -> socket.socket:
    """A non-blocking UDP socket on 0.0.0.0:port that hears broadcasts on `interface` only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", port))
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on udp 0.0.0.0:{port} on interface "
                                   f"{interface}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _local_address(ancdata) -> IPv4Address | None:
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _PKTINFO.size:
            address = IPv4Address(_PKTINFO.unpack_from(data)[1])
            return address if address != wire.ZERO else None
    return None


def _set_arp(sock: socket.socket, interface: str, reply: wire.Reply) -> bool:
    """Teach the kernel yiaddr -> chaddr so a unicast reaches a client without an address
    (RFC 2131 4.1; what dnsmasq does). False when it could not: send a broadcast then."""
    ip = reply.yiaddr.packed
    mac = reply.request.chaddr
    arpreq = struct.pack("=H2s4s8sH14siH14s16s", socket.AF_INET, b"", ip, b"", 1, mac, ATF_COM,
                         socket.AF_INET, b"", interface.encode())
    try:
        fcntl.ioctl(sock.fileno(), SIOCSARP, arpreq)
    except OSError as exc:
        log.debug("dhcp.arp_failed", extra={"fields": {"ip": reply.yiaddr, "error": exc}})
        return False
    return True
