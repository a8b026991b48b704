"""The asyncio shell of the DNS server: UDP and TCP sockets around the pure core.

UDP, with `workers` > 0: worker processes answer the zone's queries from pre-built
replies and relay the rest here (see `workers`). With `workers` = 0 the socket is read
here, in batches from a reader callback (one wake-up of the event loop answers up to
`BATCH` queries — asyncio's DatagramProtocol costs a wake-up per packet and is three
times slower). TCP (RFC 7766), always here: length-prefixed messages, several per
connection, answered as they complete (forwarded ones may overtake), the connection
closed after `idle_timeout` seconds without a query. Forwarded queries run as tasks, at
most `MAX_PENDING` at once; beyond that they get SERVFAIL.
"""

import asyncio
import logging
import socket
from collections.abc import Callable

from netservices.dns.core import Forward, Responder
from netservices.dns.forward import Forwarder
from netservices.dns.workers import UdpWorkers, reuseport_group
from netservices.sockets import listen

log = logging.getLogger("netservices.dns.server")

BATCH = 256
MAX_PENDING = 1000


class DnsServer:
    """Serves `responder` on every (host, port) of `addresses`, UDP and TCP."""

    def __init__(self, responder: Responder, addresses: list[tuple[str, int]], *,
                 forwarder: Forwarder | None = None, idle_timeout: float = 10.0,
                 workers: int = 0):
        self.responder = responder
        self.addresses = addresses
        self.forwarder = forwarder
        self.idle_timeout = idle_timeout
        self.workers = workers
        self.stats = ServerStats(self)
        self._udp: list[socket.socket] = []  # read here (workers = 0), or the first of a group
        self._group: list[socket.socket] = []  # the workers' sockets, every address
        self._tcp: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self._started = False
        self.udp_workers: UdpWorkers | None = None

    def open(self) -> None:
        """Bind every socket now; BindError names the one that failed."""
        try:
            for host, port in self.addresses:
                group, tcp = _bind(host, port, self.workers)
                self._udp.append(group[0])
                self._group += group if self.workers else []
                self._tcp.append(tcp)
        except OSError:
            self._close_sockets()
            raise
        if self._group:
            self.udp_workers = UdpWorkers(self.responder, self._group, self._spawn)

    def bound(self) -> list[tuple[str, int]]:
        """The (host, port) each UDP socket got (port 0 asks the kernel for one)."""
        return [s.getsockname()[:2] for s in self._udp]

    async def serve(self) -> None:
        """Answer until `close()`; raises when the UDP workers keep dying."""
        loop = asyncio.get_running_loop()
        if self._stop.is_set():  # closed before it began: one DnsServer serves once
            return
        self._started = True
        waits = [loop.create_task(self._stop.wait())]
        try:
            if self.udp_workers is not None:
                waits.append(loop.create_task(self.udp_workers.run()))
            else:
                for sock in self._udp:
                    loop.add_reader(sock.fileno(), self._read_udp, sock)
            for sock in self._tcp:
                server = await loop.create_server(lambda: _TcpConnection(self), sock=sock)
                self._servers.append(server)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in waits:
                task.cancel()
            await self._shutdown(loop)

    async def close(self) -> None:
        """Make `serve()` return; release the sockets if it never ran."""
        self._stop.set()
        if not self._started:
            if self.udp_workers is not None:
                self.udp_workers.close()
            self._close_sockets()
            self.responder.close()

    async def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.udp_workers is None:
            for sock in self._udp:
                loop.remove_reader(sock.fileno())
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        self._servers = []
        try:
            if self.udp_workers is not None:
                await self.udp_workers.stop()
        finally:  # also when cancelled while waiting for the workers to end
            self._close_sockets()
            self.responder.close()

    def _close_sockets(self) -> None:
        for sock in self._udp + self._group + self._tcp:
            sock.close()  # a second close of a group's socket does nothing
        self._udp, self._group, self._tcp = [], [], []

    def _read_udp(self, sock: socket.socket) -> None:
        answer, now = self.responder.answer, asyncio.get_running_loop().time()
        recv, send = sock.recvfrom, sock.sendto
        for _ in range(BATCH):
            try:
                data, peer = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNREFUSED queued by an ICMP error: nothing to read
                continue
            out = answer(data, udp=True, now=now)
            if out is None:
                continue
            if isinstance(out, Forward):
                self._spawn(out, lambda reply, peer=peer: self._send_udp(sock, reply, peer))
                continue
            try:
                send(out, peer)
            except OSError:  # a full send buffer or an unreachable peer: drop this one
                pass

    def _spawn(self, fwd: Forward, deliver: Callable[[bytes], None]) -> None:
        if self.forwarder is None or len(self._tasks) >= MAX_PENDING:
            deliver(self.responder.forwarded(fwd, None, self._now()))  # SERVFAIL at once
            return
        task = asyncio.get_running_loop().create_task(self._forward(fwd, deliver))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, fwd: Forward, deliver: Callable[[bytes], None]) -> None:
        try:
            upstream = await self.forwarder.resolve(fwd.query)
        except Exception:
            log.exception("dns.forward_failed")
            upstream = None
        deliver(self.responder.forwarded(fwd, upstream, self._now()))

    @staticmethod
    def _send_udp(sock: socket.socket, reply: bytes, peer) -> None:
        try:
            sock.sendto(reply, peer)
        except OSError:  # a full send buffer or an unreachable peer: drop this one
            pass

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()


class ServerStats:
    """The responder's counters plus the UDP workers' (what `metrics` exports)."""

    def __init__(self, server: DnsServer):
        self._server = server

    def __getattr__(self, name: str) -> int:
        own = getattr(self._server.responder.stats, name)
        workers = self._server.udp_workers
        if workers is None or name not in ("received", "answered", "malformed"):
            return own
        answered, dropped = workers.totals()
        return own + {"received": answered + dropped, "answered": answered,
                      "malformed": dropped}[name]


def _bind(host: str, port: int, workers: int) -> tuple[list[socket.socket], socket.socket]:
    """UDP socket(s) and a TCP socket on one port: one UDP socket read here (workers = 0)
    or a group of `workers`. Port 0: a free port for all (tests, benchmarks)."""
    for attempt in range(20):
        group = []
        try:
            group = reuseport_group(host, port, workers) if workers else [listen("udp", host, port)]
            return group, listen("tcp", host, group[0].getsockname()[1])
        except OSError:  # with port 0: taken by someone else meanwhile, try another
            for sock in group:
                sock.close()
            if port or attempt == 19:
                raise
    raise AssertionError("unreachable")


class _TcpConnection(asyncio.Protocol):
    """One client connection: length-prefixed queries in, replies out (RFC 1035 4.2.2)."""

    def __init__(self, server: DnsServer):
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._touch()

    def connection_lost(self, exc) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._touch()
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                return
            message = bytes(self.buffer[2:2 + size])
            del self.buffer[:2 + size]
            if not self._handle(message):
                return

    def _handle(self, message: bytes) -> bool:
        out = self.server.responder.answer(message, udp=False, now=self.server._now())
        if out is None:  # garbage: RFC 7766 allows closing; nothing else makes sense
            self.transport.close()
            return False
        if isinstance(out, Forward):
            self.server._spawn(out, self.send)
        else:
            self.send(out)
        return True

    def send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    def _touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.server.idle_timeout, self._expire)

    def _expire(self) -> None:
        if self.transport is not None:
            self.transport.close()
