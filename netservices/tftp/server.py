"""The asyncio shell of the TFTP server: the sockets, the timers and the counters.

One UDP socket per listen address receives requests; each transfer gets its own
ephemeral UDP socket (its transfer ID, RFC 1350 section 4), read by a loop reader
callback — every transfer lives on the one event loop, no thread per client. Files are
opened (and rendered) in the loop's default executor so that a slow renderer stalls no
transfer. One timer task checks every transfer's retransmission deadline each `TICK`.

Garbage is counted, logged at debug level with the peer and dropped, never answered.
Packets reaching a transfer's socket from another host or port get ERROR 5 and leave
the transfer alone. Any other exception while handling a packet is a bug: it is logged
with its traceback, that packet (or that transfer) is dropped and the server goes on.
"""

import asyncio
import logging
import socket
import time
from collections import Counter

from prometheus_client import Counter as Metric
from prometheus_client import Gauge

from netservices.sockets import listen
from netservices.tftp import blocks, wire
from netservices.tftp.config import TftpConfig
from netservices.tftp.files import Files, Refused, clean_path
from netservices.tftp.session import Limits, Transfer, negotiate

log = logging.getLogger("netservices.tftp")

TICK = 0.02  # seconds between two checks of the retransmission deadlines
BURST = 64  # datagrams read from one socket per wake-up, so that no socket starves the rest
MODES = ("octet", "netascii")
# A client sends ACKs (4 bytes) and maybe an ERROR on a transfer socket; a small buffer
# saves allocating 64 KiB per datagram (a longer ERROR is cut, and then ignored).
TRANSFER_RECV = 2048

REQUESTS = Metric("tftp_requests", "Read/write requests by outcome", ["result"])
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


class _Session:
    """A transfer with its socket and its peer (the client's transfer ID)."""

    __slots__ = ("transfer", "sock", "peer", "key", "path", "began")

    def __init__(self, transfer: Transfer, sock: socket.socket, peer, key, path: str, now: float):
        self.transfer, self.sock, self.peer, self.key = transfer, sock, peer, key
        self.path, self.began = path, now


class TftpServer:
    """Serves `files` read-only per `cfg`; `start()` binds, `serve()` runs, `stop()` ends."""

    def __init__(self, cfg: TftpConfig, files: Files, *, port: int | None = None,
                 clock=time.monotonic):
        """`port` overrides cfg.port (0: a free port, for tests and benchmarks)."""
        self.cfg, self.files, self.clock = cfg, files, clock
        self.port = cfg.port if port is None else port
        self.limits = limits(cfg)
        self.stats: Counter[str] = Counter()
        self._listeners: list[tuple[socket.socket, str]] = []
        self._sessions: dict[int, _Session] = {}
        self._keys: set = set()  # (peer, request bytes) of requests being served
        self._stopped: asyncio.Event | None = None
        self._serving = False

    @property
    def addresses(self) -> list[tuple]:
        """Where the listening sockets are bound (useful with port 0)."""
        return [sock.getsockname() for sock, _ in self._listeners]

    async def start(self) -> None:
        for host in self.cfg.listen:
            sock = listen("udp", str(host), self.port)
            self._listeners.append((sock, str(host)))
        self._stopped = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._serving = True
        for sock, host in self._listeners:
            loop.add_reader(sock.fileno(), self._on_request, sock, host)
        try:
            while not self._stopped.is_set():
                self._check_deadlines(self.clock())
                try:
                    await asyncio.wait_for(self._stopped.wait(), TICK)
                except TimeoutError:
                    pass
        finally:
            for sock, _ in self._listeners:
                loop.remove_reader(sock.fileno())
            self._close_all()
            self._serving = False

    async def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()  # serve() closes everything on its way out
        if not self._serving:
            self._close_all()

    def _close_all(self) -> None:
        for session in list(self._sessions.values()):
            self._finish(session, "stopped")
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
            # Unanswered, not refused: a PXE ROM aborts its boot on an ERROR, but sends a
            # request left without answer again, and gets a slot once one is free.
            REQUESTS.labels("busy").inc()
            self.stats["request_busy"] += 1
            return
        try:
            path = clean_path(packet.filename)
        except Refused as exc:
            _log(logging.INFO, "tftp.refused", peer=peer, path=packet.filename, reason=exc)
            return self._refuse(sock, peer, "refused", wire.ACCESS_VIOLATION, "Access violation")
        self._keys.add(key)
        task = asyncio.get_running_loop().create_task(self._open(sock, host, packet, path, peer, key))
        task.add_done_callback(_report_crash)

    async def _open(self, sock, host: str, packet: wire.Request, path: str, peer, key) -> None:
        loop = asyncio.get_running_loop()
        try:
            content, size = await loop.run_in_executor(None, self._load, path, peer, packet.mode)
        except Refused as exc:
            _log(logging.INFO, "tftp.refused", peer=peer, path=path, reason=exc)
            content, size = exc, None
        except Exception:
            log.error("tftp.open_failed", exc_info=True, extra={"fields": {"peer": peer, "path": path}})
            content, size = RuntimeError(), None
        try:
            if self._stopped is None or self._stopped.is_set():
                raise asyncio.CancelledError  # stopped while the file was being opened
            self._begin(sock, host, packet, path, peer, key, content, size)
        except BaseException:
            self._keys.discard(key)
            if hasattr(content, "close"):
                content.close()
            raise

    def _load(self, path: str, peer, mode: str):
        """In the executor: open or render the file, convert netascii, measure it."""
        content = self.files.open(path, peer)
        if content is None:
            return None, None
        try:
            content = blocks.prepare(content, mode)
        except blocks.TooLarge as exc:
            raise Refused(str(exc)) from None
        return content, blocks.size_of(content)

    def _begin(self, sock, host, packet, path, peer, key, content, size) -> None:
        if content is None or isinstance(content, Exception):
            self._keys.discard(key)
            code, text, result = {
                type(None): (wire.NOT_FOUND, "File not found", "not_found"),
                Refused: (wire.ACCESS_VIOLATION, "Access violation", "refused"),
            }.get(type(content), (wire.NOT_DEFINED, "Internal error", "error"))
            if result == "not_found":
                _log(logging.INFO, "tftp.not_found", peer=peer, path=path)
            return self._refuse(sock, peer, result, code, text)
        options = negotiate(packet.options, size, self.limits)
        now = self.clock()
        transfer = Transfer(blocks.blocks(content, options.blksize, size), options, self.limits, now)
        tsock = self._transfer_socket(host)
        session = _Session(transfer, tsock, peer, key, path, now)
        self._sessions[tsock.fileno()] = session
        ACTIVE.inc()
        REQUESTS.labels("served").inc()
        _log(logging.DEBUG, "tftp.transfer", peer=peer, path=path, **options.oack)
        asyncio.get_running_loop().add_reader(tsock.fileno(), self._on_transfer, session)
        self._send(session, transfer.start(now))

    def _transfer_socket(self, host: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        tsock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tsock.bind((host, 0))
            tsock.setblocking(False)
        except OSError:
            tsock.close()
            raise
        return tsock

    def _refuse(self, sock, peer, result: str, code: int, text: str) -> None:
        REQUESTS.labels(result).inc()
        self.stats[f"request_{result}"] += 1
        try:
            sock.sendto(wire.error(code, text), peer)
        except OSError:
            pass

    # Transfers, on their own sockets.

    def _on_transfer(self, session: _Session) -> None:
        sock, peer, transfer = session.sock, session.peer, session.transfer
        now = self.clock()
        try:
            for _ in range(BURST):
                try:
                    data, source = sock.recvfrom(TRANSFER_RECV)
                except (BlockingIOError, InterruptedError):
                    break
                if source != peer:
                    self._wrong_tid(sock, data, source)
                    continue
                block = wire.parse_ack(data)
                if block is not None:
                    self._send(session, transfer.on_ack(block, now))
                else:
                    self._other(session, data)
                if transfer.done:
                    break
        except Exception:
            log.error("tftp.transfer_failed", exc_info=True, extra={"fields": {"peer": peer}})
            transfer.on_error()
        if transfer.done:
            self._finish(session, "failed" if transfer.failed else "done")

    def _other(self, session: _Session, data: bytes) -> None:
        try:
            packet = wire.parse(data)
        except wire.Malformed as exc:
            return self._count_malformed(session.peer, exc)
        if isinstance(packet, wire.Error):
            _log(logging.INFO, "tftp.client_error", peer=session.peer, path=session.path,
                 code=packet.code, message=packet.message)
            session.transfer.on_error()
        else:
            self._count("stray")

    def _wrong_tid(self, sock: socket.socket, data: bytes, source) -> None:
        """RFC 1350 section 4: answer ERROR 5 to the stranger, leave the transfer alone."""
        try:
            packet = wire.parse(data)
        except wire.Malformed as exc:
            return self._count_malformed(source, exc)
        self._count("wrong_tid")
        if not isinstance(packet, wire.Error):  # never answer an ERROR
            try:
                sock.sendto(wire.error(wire.UNKNOWN_TID, "Unknown transfer ID"), source)
            except OSError:
                pass

    def _send(self, session: _Session, packets: list[bytes]) -> None:
        sendto, peer = session.sock.sendto, session.peer
        for packet in packets:
            try:
                sendto(packet, peer)
            except (BlockingIOError, InterruptedError):
                break  # the socket buffer is full: the retransmission timer resends
            except OSError as exc:
                _log(logging.DEBUG, "tftp.send_failed", peer=peer, error=exc.strerror)
                break

    def _check_deadlines(self, now: float) -> None:
        for session in list(self._sessions.values()):
            transfer = session.transfer
            if now < transfer.deadline:
                continue
            try:
                self._send(session, transfer.on_timeout(now))
            except Exception:
                log.error("tftp.transfer_failed", exc_info=True, extra={"fields": {"peer": session.peer}})
                transfer.on_error()
            if transfer.done:
                self._finish(session, "timeout" if transfer.failed else "done")

    def _finish(self, session: _Session, result: str) -> None:
        fd = session.sock.fileno()
        if self._sessions.pop(fd, None) is None:
            return
        try:
            asyncio.get_running_loop().remove_reader(fd)
        except RuntimeError:
            pass
        session.sock.close()
        self._keys.discard(session.key)
        transfer = session.transfer
        try:
            transfer.blocks.close()
        except Exception:
            log.error("tftp.close_failed", exc_info=True, extra={"fields": {"path": session.path}})
        if transfer.failed and result == "done":
            result = "aborted"
        ACTIVE.dec()
        TRANSFERS.labels(result).inc()
        BYTES.inc(transfer.bytes_sent)
        PACKETS.labels("retransmitted").inc(transfer.retransmits)
        PACKETS.labels("duplicate_ack").inc(transfer.duplicates)
        self.stats[f"transfer_{result}"] += 1
        self.stats["retransmitted"] += transfer.retransmits
        self.stats["duplicate_ack"] += transfer.duplicates
        _log(logging.INFO, "tftp.sent" if result == "done" else "tftp.ended", peer=session.peer,
             path=session.path, result=result, bytes=transfer.bytes_sent,
             seconds=round(self.clock() - session.began, 3), retransmits=transfer.retransmits)

    def _count(self, kind: str) -> None:
        self.stats[kind] += 1
        PACKETS.labels(kind).inc()

    def _count_malformed(self, peer, exc: Exception) -> None:
        self._count("malformed")
        _log(logging.DEBUG, "tftp.malformed", peer=peer, error=exc)


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("tftp.request_failed", exc_info=task.exception())
