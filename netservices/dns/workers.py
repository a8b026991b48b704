"""UDP worker processes of the DNS server, and the parent's side of them.

Each listen address gets `count` UDP sockets bound together with SO_REUSEPORT (the
kernel spreads the queries over them by the client's address and port) and a worker
process per socket (`udpworker`), which answers the zone's queries from its copy of the
pre-built replies. Whatever a worker cannot answer (first query of a shape, forwarding,
EDNS oddities, errors, garbage) comes here over its control socket and is answered by
the server's `Responder`, from the worker's own socket; the entry the responder built
goes back to that worker. Zone changes bump a generation counter in shared memory, which
the workers check before every batch.

The parent holds every socket for as long as the server runs, so a worker that dies
loses nothing but the datagrams it had read: it is restarted at once on the same
socket, and `run()` raises when workers die more than `MAX_RESTARTS` times within
`RESTART_WINDOW` seconds (the component then crashes loudly). `stop()` ends them with
SIGTERM (SIGKILL after `STOP_GRACE` seconds); they also end by themselves when the
parent goes.
"""

import asyncio
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

from netservices.dns import udpworker
from netservices.dns.core import Forward, Responder
from netservices.dns.mmsg import MSG_DONTWAIT, peer
from netservices.sockets import BindError, listen

log = logging.getLogger("netservices.dns.workers")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
STOP_GRACE = 2.0
RECV_TIMEOUT = 1.0  # a worker idle this long checks that its parent is still there
RCVBUF = 4 << 20  # bytes of queued queries per worker socket (about 4,000 datagrams)
SO_RCVBUFFORCE = 33  # Linux; not in Python's socket module


def auto_count() -> int:
    """Workers per address when the config says "auto": one per CPU core but one (the
    appliance's own process needs one), at least 1, at most 4."""
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def reuseport_group(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` blocking UDP sockets on host:port, one SO_REUSEPORT group.

    The port is first bound once without SO_REUSEPORT, so that a port in use (by another
    server, or another group) fails here with BindError instead of being shared.
    """
    probe = listen("udp", host, port)
    port = probe.getsockname()[1]
    family = probe.family
    probe.close()
    group: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            group.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            timeval = struct.pack("@ll", int(RECV_TIMEOUT), 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            _receive_buffer(sock, RCVBUF)
    except OSError as exc:
        for sock in group:
            sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise BindError(exc.errno, f"cannot listen on udp {where}: {exc.strerror}") from None
    return group


def _receive_buffer(sock: socket.socket, size: int) -> None:
    """Room for a burst of queries while a worker is busy (relaying the first query of
    each shape, or descheduled); beyond net.core.rmem_max only with CAP_NET_ADMIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class _Slot:
    """One worker: its socket (kept here), its process and control socket while it runs."""

    def __init__(self, index: int, udp: socket.socket):
        self.index, self.udp = index, udp
        self.proc: subprocess.Popen | None = None
        self.ctrl: socket.socket | None = None
        self.learned: set[bytes] = set()  # keys sent to it at `generation`
        self.generation = -1


class UdpWorkers:
    """The worker processes of one server; see the module docstring."""

    def __init__(self, responder: Responder, sockets: list[socket.socket],
                 forward: Callable[[Forward, Callable[[bytes], None]], None]):
        self.responder, self.forward = responder, forward
        self.slots = [_Slot(i, s) for i, s in enumerate(sockets)]
        self._shm_fd = os.memfd_create("pylabs-dns-workers")
        os.ftruncate(self._shm_fd, 8 * (1 + udpworker.PER_WORKER * len(sockets)))
        self.shared = udpworker.Shared(self._shm_fd, len(sockets))
        self._deaths: list[float] = []
        self._failed: asyncio.Future | None = None
        self._stopping = False
        self._totals: tuple[int, int] | None = None  # kept when the shared memory goes
        responder.authority.subscribe(self.invalidate)

    def pids(self) -> list[int]:
        """The running workers' process ids (for logs and tests)."""
        return [s.proc.pid for s in self.slots if s.proc is not None]

    def counter(self, worker: int, which: int) -> int:
        """One of a worker's counters (udpworker.RECEIVED, ANSWERED, RELAYED)."""
        return self.shared.counter(worker, which) if self._totals is None else 0

    def totals(self) -> tuple[int, int]:
        """Datagrams answered by the workers, and dropped by them (too long to be queries,
        or not relayed because this process was behind)."""
        if self._totals is not None:
            return self._totals
        counts = [[self.shared.counter(w, c) for c in range(udpworker.PER_WORKER)]
                  for w in range(len(self.slots))]
        answered = sum(c[udpworker.ANSWERED] for c in counts)
        relayed = sum(c[udpworker.RELAYED] for c in counts)
        return answered, sum(c[udpworker.RECEIVED] for c in counts) - answered - relayed

    def invalidate(self) -> None:
        """The zones changed: every worker drops its table before its next batch."""
        if not self._stopping:
            self.shared.view[udpworker.GENERATION] += 1

    async def run(self) -> None:
        """Start the workers and keep them running; raises when they keep dying."""
        loop = asyncio.get_running_loop()
        self._failed = loop.create_future()
        for slot in self.slots:
            self._start(slot)
        await self._failed

    async def stop(self) -> None:
        """End the workers (SIGTERM, then SIGKILL) and release everything."""
        self._stopping = True
        procs = [s.proc for s in self.slots if s.proc is not None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        try:
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:  # also when cancelled meanwhile
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.close()

    def close(self) -> None:
        """Release the sockets and the shared memory (the workers have ended)."""
        self._stopping = True
        if self._totals is not None:
            return
        self.responder.authority.unsubscribe(self.invalidate)
        for slot in self.slots:
            self._close_ctrl(slot)
            slot.proc = None
            slot.udp.close()
        self._totals = self.totals()
        self.shared.close()
        os.close(self._shm_fd)

    def _start(self, slot: _Slot) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = [slot.udp.fileno(), child.fileno(), self._shm_fd, slot.index, os.getpid(),
                len(self.slots)]
        try:
            slot.proc = subprocess.Popen(
                [sys.executable, "-m", "netservices.dns.udpworker", *map(str, args)],
                pass_fds=(slot.udp.fileno(), child.fileno(), self._shm_fd))
        finally:
            child.close()
        parent.setblocking(False)
        slot.ctrl, slot.learned, slot.generation = parent, set(), -1
        asyncio.get_running_loop().add_reader(parent.fileno(), self._read, slot)
        log.debug("dns.worker_started", extra={"fields": {"worker": slot.index,
                                                          "pid": slot.proc.pid}})

    def _read(self, slot: _Slot) -> None:
        for _ in range(256):
            try:
                message = slot.ctrl.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if not message:
                self._died(slot)
                return
            try:
                self._answer(slot, *udpworker.read_relay(message))
            except Exception:  # one datagram must never stop the server
                log.exception("dns.relay_failed")

    def _answer(self, slot: _Slot, sender: bytes, data: bytes) -> None:
        generation = self.shared.view[udpworker.GENERATION]
        to = peer(sender)
        out = self.responder.answer(data, udp=True, now=asyncio.get_running_loop().time())
        if out is None:
            return
        if isinstance(out, Forward):
            self.forward(out, lambda reply: self._send(slot.udp, reply, to))
            return
        self._send(slot.udp, out, to)
        found = self.responder.entry(data)
        if found is None:
            return
        if slot.generation != generation:
            slot.learned, slot.generation = set(), generation
        if found[0] not in slot.learned:
            slot.learned.add(found[0])
            try:
                slot.ctrl.send(udpworker.learn_message(generation, *found))
            except OSError:  # its control socket is full: it will ask again
                slot.learned.discard(found[0])

    @staticmethod
    def _send(sock: socket.socket, reply: bytes, to: tuple) -> None:
        try:
            sock.sendto(reply, MSG_DONTWAIT, to)
        except OSError:  # a full send buffer, an unreachable peer, or a closed socket
            pass

    def _died(self, slot: _Slot) -> None:
        """A worker's control socket closed: it has ended. Restart it, or fail."""
        proc = slot.proc
        self._close_ctrl(slot)
        slot.proc = None
        if self._stopping:
            return
        try:
            code = proc.wait(timeout=1) if proc else None
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW] + [now]
        log.error("dns.worker_died", extra={"fields": {"worker": slot.index, "code": code,
                                                       "deaths": len(self._deaths)}})
        if len(self._deaths) > MAX_RESTARTS:
            if not self._failed.done():
                self._failed.set_exception(RuntimeError(
                    f"DNS workers died {len(self._deaths)} times in {RESTART_WINDOW:.0f} s "
                    f"(last: worker {slot.index}, exit code {code})"))
            return
        self._start(slot)

    def _close_ctrl(self, slot: _Slot) -> None:
        if slot.ctrl is not None:
            try:
                asyncio.get_running_loop().remove_reader(slot.ctrl.fileno())
            except RuntimeError:  # no running loop: nothing was registered in one
                pass
            slot.ctrl.close()
            slot.ctrl = None
