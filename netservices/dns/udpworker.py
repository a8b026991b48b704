"""A UDP worker process of the DNS server: answers the zone's queries from a table.

Started by `workers.UdpWorkers` as `python -m netservices.dns.udpworker UDP CTRL SHM
INDEX PARENT` with inherited file descriptors: UDP, a socket of the server's SO_REUSEPORT
group (the kernel spreads the queries over the workers); CTRL, its end of a
SOCK_SEQPACKET pair to the parent; SHM, the shared counters (`Shared`).

The worker has no zone and no dnslib. It keeps the parent's pre-built replies (see
`core`): a query whose key is in its table is answered here, by slicing; any other
datagram goes to the parent as it came (`relay`), and the parent answers it from the
same socket and sends back the table entry it built. Every zone change bumps the
generation in SHM: a worker clears its table when it sees a new generation, before
answering the datagrams it just read, and ignores entries of an older generation, so a
reply never outlives the change by more than the batch in hand.

It exits when the parent goes: PR_SET_PDEATHSIG, and an end of file on CTRL (checked
while idle and every `CHECK_EVERY` batches). SIGINT is ignored (the parent stops it with
SIGTERM).
"""

import ctypes
import mmap
import os
import pickle
import select
import signal
import socket
import sys
from collections import deque

from netservices.dns.mmsg import MSG_DONTWAIT, MSG_WAITFORONE, Rings

HEADER = 12
BATCH = 64
SLOT = 4096  # a query this long or longer is not a query: dropped
CHECK_EVERY = 256
BACKLOG_MAX = 4096
FLUSH_WAIT = 0.01
TABLE_MAX = 200_000  # as core.FAST_TABLE_MAX (not imported: the worker has no dnslib)
GENERATION, RECEIVED, ANSWERED, RELAYED = 0, 0, 1, 2
PER_WORKER = 3


class Shared:
    """Counters in shared memory: [0] the zone generation (the parent bumps it), then
    per worker: datagrams received, answered here, relayed to the parent."""

    def __init__(self, fd: int, workers: int):
        self.map = mmap.mmap(fd, 8 * (1 + PER_WORKER * workers))
        self.view = memoryview(self.map).cast("Q")

    def close(self) -> None:
        self.view.release()
        self.map.close()

    def counter(self, worker: int, which: int) -> int:
        return self.view[1 + PER_WORKER * worker + which]


def relay_message(sender: bytes, data: bytes) -> bytes:
    """Worker to parent: the sender's raw sockaddr (its length first) and the datagram."""
    return bytes((len(sender),)) + sender + data


def read_relay(message: bytes) -> tuple[bytes, bytes]:
    return message[1:1 + message[0]], message[1 + message[0]:]


def learn_message(generation: int, key: bytes, entry: tuple) -> bytes:
    """Parent to worker: a table entry built at `generation`."""
    return pickle.dumps((generation, key, entry))


class Worker:
    """The loop of one worker; see the module docstring."""

    def __init__(self, udp: socket.socket, ctrl: socket.socket, shared: Shared, index: int):
        self.udp, self.ctrl, self.shared = udp, ctrl, shared
        self.slot = 1 + PER_WORKER * index
        self.rings = Rings(udp, BATCH, SLOT)
        self.table: dict[bytes, tuple] = {}
        self.generation = shared.view[GENERATION]
        self.backlog: deque[bytes] = deque()  # relays the control socket had no room for
        self._writable = select.poll()
        self._writable.register(ctrl.fileno(), select.POLLOUT)

    def run(self) -> None:
        """Serve until the parent goes away. The parent's entries are taken before a batch
        that follows relayed queries, while idle, and every `CHECK_EVERY` batches."""
        rings, view, slot = self.rings, self.shared.view, self.slot
        batches = waiting = 0
        while True:
            n = rings.recv(MSG_DONTWAIT if self.backlog else MSG_WAITFORONE)
            batches += 1
            if self.backlog:
                self.flush(wait=n == 0)
            if (n == 0 or waiting or batches % CHECK_EVERY == 0) and not self.drain():
                return
            if n:
                view[slot + RECEIVED] += n
                answered, waiting = self.answer(n)
                view[slot + ANSWERED] += answered  # counted before the replies go
                rings.send(n, answered == n)

    def answer(self, n: int) -> tuple[int, int]:
        """Put the replies to the `n` datagrams in the rings, relay what has none here;
        (answered here, relayed)."""
        generation = self.shared.view[GENERATION]
        if generation != self.generation:
            self.table.clear()
            self.generation = generation
        rings, get, size = self.rings, self.table.get, SLOT
        rview, sview, slens, length = rings.rview, rings.sview, rings.slens, rings.length
        answered = relayed = 0
        for i in range(n):
            off, ln = i * size, length(i)
            data = rview[off:off + ln].tobytes()
            qn = data.find(0, HEADER)
            hit = get(data[2:qn + 1].lower() + data[qn + 1:qn + 16]) if qn > 0 else None
            if hit is not None and hit[0] == ln:
                out = data[:2] + hit[1] + data[HEADER:qn + 5] + hit[2]
                sview[off:off + len(out)] = out
                slens[2 * i + 1] = len(out)
                answered += 1
                continue
            rings.skip(i)
            if ln < size:
                relayed += self.relay(rings.sender(i), data)
        return answered, relayed

    def relay(self, sender: bytes, data: bytes) -> int:
        """Send a datagram to the parent, or queue it while the parent is behind (a burst
        of new shapes, after a start or a zone change); 0 when the queue is full too."""
        if len(self.backlog) >= BACKLOG_MAX:
            return 0  # dropped: the client asks again
        self.shared.view[self.slot + RELAYED] += 1  # counted before the parent answers
        self.backlog.append(relay_message(sender, data))
        self.flush(wait=False)
        return 1

    def flush(self, *, wait: bool) -> None:
        """Send the queued datagrams to the parent; `wait`: for up to `FLUSH_WAIT` seconds
        for room in the control socket."""
        while self.backlog:
            try:
                self.ctrl.send(self.backlog[0], MSG_DONTWAIT)
            except BlockingIOError:
                if not wait or not self._writable.poll(FLUSH_WAIT * 1000):
                    return
                continue
            except OSError:  # the parent has gone: `drain` sees it
                return
            self.backlog.popleft()

    def drain(self) -> bool:
        """Take the parent's table entries; False when the parent has gone."""
        while True:
            try:
                message = self.ctrl.recv(65536, MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not message:
                return False
            generation, key, entry = pickle.loads(message)
            if generation == self.generation == self.shared.view[GENERATION]:
                if len(self.table) >= TABLE_MAX:
                    self.table.clear()
                self.table[key] = entry


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent (the thread that started this process) ends."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # the end of file on CTRL still stops the worker
    if os.getppid() != parent:
        sys.exit(0)  # the parent ended before the signal was set


def main(argv: list[str]) -> int:
    udp_fd, ctrl_fd, shm_fd, index, parent, workers = (int(a) for a in argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    udp = socket.socket(fileno=udp_fd)
    ctrl = socket.socket(fileno=ctrl_fd)
    shared = Shared(shm_fd, workers)
    os.close(shm_fd)
    Worker(udp, ctrl, shared, index).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
