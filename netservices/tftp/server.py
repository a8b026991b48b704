"""The asyncio side of the TFTP server: the request port, the files, the workers, the counters.

One UDP socket per listen address receives requests, in the event loop of the
appliance: they are parsed, their paths checked, and their files opened (or rendered)
in the loop's default executor so that a slow renderer stalls nothing. Each accepted
transfer then runs in one of a fixed pool of worker processes (pool.py, worker.py,
engine.py) — no thread per client, and every CPU core moves blocks. Its transfer ID
(RFC 1350 section 4) is made here: a socket connected to the client plus an
unconnected one on the same port for strangers; the worker gets both, the file (a
regular file, or a memfd holding rendered bytes) and the negotiated options. The
server keeps the connected socket until the worker reports the end, so that when a
worker dies its clients get an ERROR at once instead of waiting out their timeouts.

Garbage is counted, logged at debug level with the peer and dropped, never answered.
Any other exception while handling a request is a bug: it is logged with its
traceback, that request is dropped and the server goes on.
"""

import asyncio
import itertools
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import asdict

from prometheus_client import Counter as Metric
from prometheus_client import Gauge

from netservices.sockets import listen
from netservices.tftp import blocks, wire
from netservices.tftp.config import TftpConfig
from netservices.tftp.files import Files, Refused, clean_path
from netservices.tftp.pool import Pool
from netservices.tftp.session import Limits, negotiate

log = logging.getLogger("netservices.tftp")

BURST = 64  # datagrams read from one socket per wake-up, so that no socket starves the rest
MODES = ("octet", "netascii")
MAX_WORKERS = 8  # workers = 0: one per CPU core, at most this many

REQUESTS = Metric("tftp_requests", "Read/write requests by outcome", ["result"])
WORKERS = Metric("tftp_worker_deaths", "Worker processes that died while serving")
TRANSFERS = Metric("tftp_transfers", "Transfers ended, by outcome", ["result"])
PACKETS = Metric("tftp_packets", "Notable packets: malformed, stray, wrong TID, retransmitted, "
                 "duplicate ACKs", ["kind"])
BYTES = Metric("tftp_sent_bytes", "File bytes sent in DATA packets, retransmissions included")
ACTIVE = Gauge("tftp_active_transfers", "Transfers in progress")


def _log(level: int, event: str, **data) -> None:
    if log.isEnabledFor(level):
        log.log(level, event, extra={"fields": data})


def limits(cfg: TftpConfig) -> Limits:
    return Limits(cfg.max_blksize, cfg.max_windowsize, cfg.timeout, cfg.max_timeout, cfg.retries)


def worker_count(cfg: TftpConfig) -> int:
    return cfg.workers or min(os.cpu_count() or 1, MAX_WORKERS)


class _Session:
    """A transfer handed to a worker: its connected socket, its client, its request."""

    __slots__ = ("id", "sock", "peer", "key", "path", "began", "worker")

    def __init__(self, ident: int, sock: socket.socket, peer, key, path: str, now: float, worker):
        self.id, self.sock, self.peer, self.key = ident, sock, peer, key
        self.path, self.began, self.worker = path, now, worker


class TftpServer:
    """Serves `files` read-only per `cfg`; `start()` binds, `serve()` runs, `stop()` ends."""

    def __init__(self, cfg: TftpConfig, files: Files, *, port: int | None = None,
                 clock=time.monotonic):
        """`port` overrides cfg.port (0: a free port, for tests and benchmarks)."""
        self.cfg, self.files, self.clock = cfg, files, clock
        self.port = cfg.port if port is None else port
        self.limits = limits(cfg)
        self.stats: Counter[str] = Counter()
        self.pool: Pool | None = None
        self._listeners: list[tuple[socket.socket, str]] = []
        self._sessions: dict[int, _Session] = {}  # by job id
        self._keys: set = set()  # (peer, request bytes) of requests being served
        self._ids = itertools.count(1)
        self._stopped: asyncio.Event | None = None
        self._serving = False

    @property
    def addresses(self) -> list[tuple]:
        """Where the listening sockets are bound (useful with port 0)."""
        return [sock.getsockname() for sock, _ in self._listeners]

    async def start(self) -> None:
        """Bind the listen addresses and start the workers (both failures are fatal)."""
        self._stopped = asyncio.Event()
        for host in self.cfg.listen:
            sock = listen("udp", str(host), self.port)
            self._listeners.append((sock, str(host)))
        settings = {"limits": asdict(self.limits), "busy_poll": self.cfg.busy_poll / 1e6,
                    "gso": self.cfg.segmentation_offload}
        self.pool = Pool(worker_count(self.cfg), settings, self._on_message, self._on_crash)
        try:
            await self.pool.start()
        except BaseException:
            await self._shutdown()
            raise

    async def serve(self) -> None:
        """Answer requests until `stop()`; raises when the workers cannot be kept running."""
        loop = asyncio.get_running_loop()
        self._serving = True
        for sock, host in self._listeners:
            loop.add_reader(sock.fileno(), self._on_request, sock, host)
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait([stopped, self.pool.failed], return_when=asyncio.FIRST_COMPLETED)
            if self.pool.failed.done() and not self._stopped.is_set():
                self.pool.failed.result()  # raises: the supervisor restarts the component
        finally:
            stopped.cancel()
            for sock, _ in self._listeners:
                loop.remove_reader(sock.fileno())
            await self._shutdown()
            self._serving = False

    async def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()  # serve() closes everything on its way out
        if not self._serving:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
            if self.pool.failed is not None and self.pool.failed.done():
                self.pool.failed.exception()  # retrieved: no "never retrieved" warning
        for session in list(self._sessions.values()):
            self._finish(session, "stopped", {})
        for sock, _ in self._listeners:
            sock.close()
        self._listeners = []

    # Requests, on a listening socket.

    def _on_request(self, sock: socket.socket, host: str) -> None:
        for _ in range(BURST):
            try:
                data, peer = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _log(logging.DEBUG, "tftp.recv_failed", error=exc.strerror)
                return
            try:
                self._request(sock, host, data, peer)
            except Exception:
                log.error("tftp.request_failed", exc_info=True, extra={"fields": {"peer": peer}})

    def _request(self, sock: socket.socket, host: str, data: bytes, peer) -> None:
        try:
            packet = wire.parse(data)
        except wire.Malformed as exc:
            return self._count_malformed(peer, exc)
        if not isinstance(packet, wire.Request):
            self._count("stray")  # an ACK, ERROR or DATA sent to the request port: no answer
            return
        if packet.opcode == wire.WRQ:
            return self._refuse(sock, peer, "write", wire.ACCESS_VIOLATION, "Read-only server")
        if packet.mode not in MODES:
            return self._refuse(sock, peer, "mode", wire.ILLEGAL_OPERATION, "Unsupported mode")
        key = (peer, data)
        if key in self._keys:
            self._count("duplicate_request")  # the transfer already started retransmits itself
            return
        if len(self._sessions) >= self.cfg.max_transfers:
            return self._busy()
        try:
            path = clean_path(packet.filename)
        except Refused as exc:
            _log(logging.INFO, "tftp.refused", peer=peer, path=packet.filename, reason=exc)
            return self._refuse(sock, peer, "refused", wire.ACCESS_VIOLATION, "Access violation")
        self._keys.add(key)
        task = asyncio.get_running_loop().create_task(self._open(sock, host, packet, path, peer, key))
        task.add_done_callback(_report_crash)

    def _busy(self) -> None:
        # Unanswered, not refused: a PXE ROM aborts its boot on an ERROR, but sends a
        # request left without answer again, and gets a slot once one is free.
        REQUESTS.labels("busy").inc()
        self.stats["request_busy"] += 1

    async def _open(self, sock, host: str, packet: wire.Request, path: str, peer, key) -> None:
        loop = asyncio.get_running_loop()
        try:
            content = await loop.run_in_executor(None, self._load, path, peer, packet.mode)
        except Refused as exc:
            _log(logging.INFO, "tftp.refused", peer=peer, path=path, reason=exc)
            content = exc
        except Exception:
            log.error("tftp.open_failed", exc_info=True, extra={"fields": {"peer": peer, "path": path}})
            content = RuntimeError()
        try:
            if self._stopped is None or self._stopped.is_set():
                raise asyncio.CancelledError  # stopped while the file was being opened
            self._begin(sock, host, packet, path, peer, key, content)
        except BaseException:
            self._keys.discard(key)
            if isinstance(content, tuple):
                content[0].close()
            raise

    def _load(self, path: str, peer, mode: str):
        """In the executor: open or render the file, convert netascii, make it a file a
        worker can read: (file, offset, size), or None when there is no such file."""
        content = self.files.open(path, peer)
        if content is None:
            return None
        try:
            return blocks.to_file(blocks.prepare(content, mode))
        except blocks.TooLarge as exc:
            raise Refused(str(exc)) from None

    def _begin(self, sock, host, packet, path, peer, key, content) -> None:
        if not isinstance(content, tuple):
            self._keys.discard(key)
            code, text, result = {
                type(None): (wire.NOT_FOUND, "File not found", "not_found"),
                Refused: (wire.ACCESS_VIOLATION, "Access violation", "refused"),
            }.get(type(content), (wire.NOT_DEFINED, "Internal error", "error"))
            if result == "not_found":
                _log(logging.INFO, "tftp.not_found", peer=peer, path=path)
            return self._refuse(sock, peer, result, code, text)
        file, offset, size = content
        options = negotiate(packet.options, size, self.limits)
        tsock, stray = _transfer_sockets(host, peer)
        ident = next(self._ids)
        job = {"id": ident, "blksize": options.blksize, "windowsize": options.windowsize,
               "timeout": options.timeout, "oack": options.oack, "size": size, "offset": offset}
        worker = None
        try:
            worker = self.pool.submit(job, [file.fileno(), tsock.fileno(), stray.fileno()])
        finally:
            file.close()  # the worker has its own descriptors now
            stray.close()
            if worker is None:
                tsock.close()
        if worker is None:
            self._keys.discard(key)
            return self._busy()
        self._sessions[ident] = _Session(ident, tsock, peer, key, path, self.clock(), worker)
        ACTIVE.inc()
        REQUESTS.labels("served").inc()
        _log(logging.DEBUG, "tftp.transfer", peer=peer, path=path, worker=worker.index, **options.oack)

    def _refuse(self, sock, peer, result: str, code: int, text: str) -> None:
        REQUESTS.labels(result).inc()
        self.stats[f"request_{result}"] += 1
        try:
            sock.sendto(wire.error(code, text), peer)
        except OSError:
            pass

    # What the workers report.

    def _on_message(self, worker, kind: str, args: list) -> None:
        if kind == "end":
            ident, fields = args
            worker.jobs.discard(ident)
            session = self._sessions.get(ident)
            if fields.get("bug"):
                log.error("tftp.transfer_failed", extra={"fields": {
                    "peer": session and session.peer, "traceback": fields["bug"]}})
            if session is not None:
                self._finish(session, fields["result"], fields)
        elif kind == "count":
            counts, notes = args
            for name, number in counts.items():
                self._count(name, number)
            for event, ident, peer, detail in notes:
                session = self._sessions.get(ident)
                _log(logging.DEBUG, f"tftp.{event}", detail=detail,
                     peer=tuple(peer) if peer else session and session.peer)

    def _on_crash(self, worker) -> None:
        """A worker died: its clients get an ERROR from their transfer ID, now."""
        WORKERS.inc()
        for ident in list(worker.jobs):
            session = self._sessions.get(ident)
            if session is None:
                continue
            try:
                session.sock.send(wire.error(wire.NOT_DEFINED, "Transfer aborted"))
            except OSError:
                pass
            self._finish(session, "crashed", {})

    def _finish(self, session: _Session, result: str, fields: dict) -> None:
        if self._sessions.pop(session.id, None) is None:
            return
        session.sock.close()
        self._keys.discard(session.key)
        session.worker.jobs.discard(session.id)
        sent, retransmits = fields.get("bytes", 0), fields.get("retransmits", 0)
        duplicates = fields.get("duplicates", 0)
        ACTIVE.dec()
        TRANSFERS.labels(result).inc()
        BYTES.inc(sent)
        PACKETS.labels("retransmitted").inc(retransmits)
        PACKETS.labels("duplicate_ack").inc(duplicates)
        self.stats[f"transfer_{result}"] += 1
        self.stats["retransmitted"] += retransmits
        self.stats["duplicate_ack"] += duplicates
        if "client_error" in fields:
            code, message = fields["client_error"]
            _log(logging.INFO, "tftp.client_error", peer=session.peer, path=session.path,
                 code=code, message=message)
        _log(logging.INFO, "tftp.sent" if result == "done" else "tftp.ended", peer=session.peer,
             path=session.path, result=result, bytes=sent, retransmits=retransmits,
             seconds=round(self.clock() - session.began, 3), detail=fields.get("detail"))

    def _count(self, kind: str, number: int = 1) -> None:
        self.stats[kind] += number
        PACKETS.labels(kind).inc(number)

    def _count_malformed(self, peer, exc: Exception) -> None:
        self._count("malformed")
        _log(logging.DEBUG, "tftp.malformed", peer=peer, error=exc)


def _transfer_sockets(host: str, peer) -> tuple[socket.socket, socket.socket]:
    """A new transfer ID on `host`: a socket connected to `peer` and a stray one, same port.

    The stray socket is bound first without SO_REUSEADDR, so the kernel picks a port no
    other socket holds; the flag is set afterwards to let the connected one share it.
    The kernel hands `peer`'s datagrams to the connected socket (the better match) and
    everyone else's to the stray one.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    stray = socket.socket(family, socket.SOCK_DGRAM)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        stray.bind((host, 0))
        stray.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(stray.getsockname())
        sock.connect(peer)
    except OSError:
        stray.close()
        sock.close()
        raise
    return sock, stray


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("tftp.request_failed", exc_info=task.exception())
