"""The loop that runs transfers in a worker process: epoll, no asyncio, no thread per client.

Each transfer arrives with two sockets bound to the same port (its transfer ID, RFC 1350
section 4): one connected to the client, which the kernel gives only that client's
packets — so the hot path is `recv`/`send` without addresses — and one unconnected,
which gets every datagram from anyone else; those get ERROR 5 and leave the transfer
alone. Per wake-up: one `epoll.poll`, one `recv` per ready transfer, the packets the
state machine (session.Transfer) asks for: a window of DATA one `send` per block, or,
with `gso`, in one `sendmsg` with UDP segmentation offload (UDP_SEGMENT, Linux 4.18+):
the kernel cuts it into the same datagrams, and a transfer that cannot use it (no
checksum offload, a segment larger than the MTU) falls back to one `send` per packet.
Retransmission deadlines are checked every `TICK`.

The engine reports through a callback: `report("end", id, fields)` when a transfer
ends, `report("count", counts, notes)` for packets worth counting. Any exception
while handling one transfer is a bug: it ends that transfer (its traceback goes into
the report), never the loop.
"""

import errno
import select
import socket
import struct
import time
import traceback
from collections import Counter

from netservices.tftp import wire

TICK = 0.02  # seconds between two checks of the retransmission deadlines
RECV = 2048  # a client sends ACKs (4 bytes), maybe an ERROR; longer datagrams are cut
UDP_SEGMENT = 103  # linux/udp.h; Python 3.11 has no constant for it
GSO_BYTES = 65000  # at most this many bytes in one offloaded send (IP limit: 65535)
GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels
NOTES = 10  # packets described per count report, at most (the rest are only counted)


class Run:
    """One transfer in the engine: its state machine, sockets and send method."""

    __slots__ = ("id", "transfer", "sock", "stray", "recv_into", "send", "gso", "per_send",
                 "began", "error")

    def __init__(self, ident, transfer, sock: socket.socket, stray: socket.socket, now: float,
                 gso: bool = False):
        self.id, self.transfer, self.sock, self.stray = ident, transfer, sock, stray
        self.recv_into, self.send, self.began = sock.recv_into, sock.send, now
        self.error: tuple[int, str] | None = None  # the client's ERROR, if it sent one
        segment = transfer.blksize + 4
        self.per_send = min(GSO_SEGMENTS, GSO_BYTES // segment)
        self.gso = [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", segment))] \
            if gso and transfer.windowsize > 1 and self.per_send > 1 else None


class Engine:
    """Runs the transfers given to `add` until they end; `run_once` is one turn of the loop."""

    def __init__(self, report, *, busy_poll: float = 0.0, gso: bool = False, clock=time.monotonic):
        self.report, self.busy_poll, self.gso, self.clock = report, busy_poll, gso, clock
        self.poller = select.epoll()
        self.runs: dict[int, Run] = {}  # connected socket fd -> run
        self.strays: dict[int, Run] = {}  # unconnected socket fd -> run
        self.others: dict[int, object] = {}  # fd -> callback (the control channel)
        self.counts: Counter[str] = Counter()
        self.notes: list[list] = []
        self.next_tick = 0.0
        self.buffer = bytearray(RECV)  # every datagram is read into it: no allocation per ACK
        self.misses = self.skip = 0  # busy polling: spins in a row that found nothing

    def watch(self, fd: int, callback) -> None:
        """Call `callback()` whenever `fd` is readable."""
        self.others[fd] = callback
        self.poller.register(fd, select.EPOLLIN)

    def add(self, ident, transfer, sock: socket.socket, stray: socket.socket) -> None:
        """Start `transfer` on `sock` (connected to the client) and `stray` (same port)."""
        run = Run(ident, transfer, sock, stray, self.clock(), self.gso)
        sock.setblocking(False)
        stray.setblocking(False)
        self.runs[sock.fileno()] = run
        self.strays[stray.fileno()] = run
        self.poller.register(sock.fileno(), select.EPOLLIN)
        self.poller.register(stray.fileno(), select.EPOLLIN)
        self._guarded(run, lambda: self._send(run, transfer.start(run.began)))

    def run_once(self, timeout: float) -> None:
        """Wait up to `timeout` seconds (less with transfers running) and handle what came."""
        poll = self.poller.poll
        if not self.runs:
            events = poll(timeout)
        elif self.busy_poll:
            events = self._spin(min(timeout, TICK))
        else:
            events = poll(min(timeout, TICK))
        now = self.clock()
        runs = self.runs
        for fd, _ in events:
            run = runs.get(fd)
            if run is not None:
                self._on_packet(run, now)
            elif fd in self.strays:
                self._on_stray(self.strays[fd])
            elif fd in self.others:
                self.others[fd]()
        if now >= self.next_tick:
            self.next_tick = now + TICK
            self._check_deadlines(now)
        if self.counts or self.notes:
            self.report("count", dict(self.counts), self.notes)
            self.counts, self.notes = Counter(), []

    def _spin(self, timeout: float) -> list:
        """Poll without sleeping for up to `busy_poll` seconds, then wait as usual: the
        next ACK of a fast client is seen without the cost of a wake-up. A spin that
        finds nothing makes the engine skip the next 1, 3, 7, … waits (up to 1023), so
        that slow clients cost no spinning."""
        poll = self.poller.poll
        if self.skip:
            self.skip -= 1
            return poll(timeout)
        clock = time.perf_counter
        end = clock() + self.busy_poll
        while clock() < end:
            events = poll(0)
            if events:
                self.misses = 0
                return events
        self.misses = min(self.misses + 1, 10)
        self.skip = (1 << self.misses) - 1
        return poll(timeout)

    def close_all(self) -> None:
        """End every transfer without a word to its client (the server is stopping)."""
        for run in list(self.runs.values()):
            self._close(run)

    # The hot path: one datagram from the client of `run`.

    def _on_packet(self, run: Run, now: float) -> None:
        data = self.buffer
        try:
            size = run.recv_into(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ECONNREFUSED: ICMP port unreachable, the client is gone
            return self._end(run, "failed", f"client unreachable: {exc.strerror}")
        transfer = run.transfer
        try:
            if size >= 4 and data[0] == 0 and data[1] == wire.ACK:
                packets = transfer.on_ack((data[2] << 8) | data[3], now)
                if len(packets) == 1:
                    try:
                        run.send(packets[0])  # lock-step: the common case, inline
                    except OSError:
                        self._send(run, packets)  # the same, with its error handling
                    transfer.prepare()  # the next block, while the client works
                elif packets:
                    self._send(run, packets)
                    transfer.prepare()
            else:
                self._other(run, bytes(data[:size]))
        except Exception:
            return self._bug(run)
        if transfer.done:
            self._end(run, "failed" if transfer.failed else "done")

    def _send(self, run: Run, packets: list) -> None:
        try:
            if len(packets) == 1 or run.gso is None:
                send = run.send
                for packet in packets:
                    send(packet)
                return
            step = run.per_send
            for start in range(0, len(packets), step):
                run.sock.sendmsg(packets[start:start + step], run.gso)
        except (BlockingIOError, InterruptedError):
            pass  # the socket buffer is full: the retransmission timer resends
        except OSError as exc:
            if run.gso is not None and exc.errno in (errno.EIO, errno.EINVAL, errno.EMSGSIZE,
                                                     errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                run.gso = None  # no segmentation offload on this path: one send per packet
                return self._send(run, packets)
            if exc.errno == errno.ECONNREFUSED:
                return  # reported again by the next recv, which ends the transfer
            self._note("send_failed", run, exc.strerror)

    def _other(self, run: Run, data: bytes) -> None:
        """Anything but an ACK from the client: its ERROR ends the transfer."""
        try:
            packet = wire.parse(data)
        except wire.Malformed as exc:
            self._count("malformed", run, str(exc))
            return
        if isinstance(packet, wire.Error):
            run.error = (packet.code, packet.message)
            run.transfer.on_error()
        else:
            self._count("stray", run, f"opcode {data[1]}")

    def _on_stray(self, run: Run) -> None:
        """RFC 1350 section 4: a packet from another host or port gets ERROR 5."""
        try:
            data, source = run.stray.recvfrom(RECV)
        except OSError:
            return
        try:
            packet = wire.parse(data)
        except wire.Malformed as exc:
            self._count("malformed", None, str(exc), source)
            return
        self._count("wrong_tid", None, "", source)
        if not isinstance(packet, wire.Error):  # never answer an ERROR
            try:
                run.stray.sendto(wire.error(wire.UNKNOWN_TID, "Unknown transfer ID"), source)
            except OSError:
                pass

    def _check_deadlines(self, now: float) -> None:
        for run in list(self.runs.values()):
            transfer = run.transfer
            if now < transfer.deadline:
                continue
            if not self._guarded(run, lambda t=transfer, r=run: self._send(r, t.on_timeout(now))):
                continue
            if transfer.done:
                self._end(run, "timeout" if transfer.failed else "done")

    def _guarded(self, run: Run, action) -> bool:
        try:
            action()
        except Exception:
            self._bug(run)
            return False
        return True

    def _bug(self, run: Run) -> None:
        run.transfer.on_error()
        self._end(run, "failed", bug=traceback.format_exc())

    def _end(self, run: Run, result: str, detail: str | None = None, bug: str | None = None) -> None:
        if self.runs.get(run.sock.fileno()) is not run:
            return
        transfer = run.transfer
        if transfer.failed and result == "done":
            result = "aborted"
        fields = {"result": result, "bytes": transfer.bytes_sent,
                  "retransmits": transfer.retransmits, "duplicates": transfer.duplicates,
                  "seconds": round(self.clock() - run.began, 3)}
        if run.error:
            fields["client_error"] = list(run.error)
        if detail:
            fields["detail"] = detail
        if bug:
            fields["bug"] = bug
        self._close(run)
        self.report("end", run.id, fields)

    def _close(self, run: Run) -> None:
        # The parent holds the same sockets: closing here alone would leave them in epoll.
        for sock, table in ((run.sock, self.runs), (run.stray, self.strays)):
            fd = sock.fileno()
            table.pop(fd, None)
            try:
                self.poller.unregister(fd)
            except (OSError, ValueError):
                pass
            sock.close()
        try:
            run.transfer.blocks.close()
        except Exception:
            self._note("close_failed", run, traceback.format_exc())

    def _count(self, kind: str, run: Run | None, detail: str, peer=None) -> None:
        self.counts[kind] += 1
        self._note(kind, run, detail, peer)

    def _note(self, event: str, run: Run | None, detail: str, peer=None) -> None:
        if len(self.notes) < NOTES:
            self.notes.append([event, run.id if run else None, list(peer) if peer else None, detail])
