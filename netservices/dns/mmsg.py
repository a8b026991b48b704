"""recvmmsg(2) and sendmmsg(2) through ctypes: many UDP datagrams per system call.

Python's socket module reads and writes one datagram per call. A DNS worker answers a
query from its table in about a microsecond of Python, so the per-datagram system calls
would cost more than the answers; `Rings` reads up to `size` datagrams with one
recvmmsg and sends the replies with one sendmmsg (measured in bench/dns.py). Linux only
(glibc has both calls since 2.14).

The buffers are fixed: slot `i` holds datagram `i` (`received(i)`), its sender's address
(`sender(i)`, raw sockaddr bytes) and the reply put with `put(i, data)`, which goes back
to that sender. Slots without a reply are skipped by `send`.
"""

import ctypes
import errno
import socket
import sys

MSG_DONTWAIT = 0x40
MSG_WAITFORONE = 0x10000
_NAME = 28  # sizeof(struct sockaddr_in6), the largest address a UDP socket here gets


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                      ctypes.c_void_p]
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]


class Rings:
    """Receive and send buffers of `size` slots of `slot` bytes for one UDP socket."""

    def __init__(self, sock: socket.socket, size: int = 64, slot: int = 4096):
        self.fd, self.size, self.slot = sock.fileno(), size, slot
        namelen = 16 if sock.family == socket.AF_INET else _NAME
        self._rbuf = ctypes.create_string_buffer(size * slot)
        self._sbuf = ctypes.create_string_buffer(size * slot)
        self._names = ctypes.create_string_buffer(size * _NAME)
        self._riov, self._siov = (_Iovec * size)(), (_Iovec * size)()
        self._rmsg, self._smsg = (_Mmsghdr * size)(), (_Mmsghdr * size)()
        for i in range(size):
            name = ctypes.addressof(self._names) + i * _NAME
            self._riov[i].base = ctypes.addressof(self._rbuf) + i * slot
            self._riov[i].len = slot
            self._siov[i].base = ctypes.addressof(self._sbuf) + i * slot
            for msg, iov in ((self._rmsg[i], self._riov[i]), (self._smsg[i], self._siov[i])):
                msg.hdr.name, msg.hdr.namelen = name, namelen
                msg.hdr.iov, msg.hdr.iovlen = ctypes.addressof(iov), 1
        self._stride = ctypes.sizeof(_Mmsghdr)
        self._lens = memoryview(self._rmsg).cast("B").cast("I")  # msg_len of each slot
        self._len_at, self._step = _Mmsghdr.len.offset // 4, self._stride // 4
        # iov_len of reply i at [2 * i + 1]: `put` sets it; the workers' loop, too, inline
        self.slens = memoryview(self._siov).cast("B").cast("Q")
        self.rview = memoryview(self._rbuf).cast("B")
        self.sview = memoryview(self._sbuf).cast("B")
        self.names = memoryview(self._names).cast("B")
        self.namelen = namelen

    def recv(self, flags: int = MSG_WAITFORONE) -> int:
        """Read up to `size` datagrams (blocking for the first one, as the socket says);
        0 when none came (timeout, signal). Slot replies are cleared."""
        n = _recvmmsg(self.fd, ctypes.addressof(self._rmsg), self.size, flags, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EINTR, errno.ECONNREFUSED):
                return 0
            raise OSError(err, f"recvmmsg: {errno.errorcode.get(err, err)}")
        return n

    def length(self, i: int) -> int:
        """Bytes received in slot `i` (`slot` or more: the datagram did not fit)."""
        return self._lens[i * self._step + self._len_at]

    def received(self, i: int) -> bytes:
        return self.rview[i * self.slot:i * self.slot + self.length(i)].tobytes()

    def sender(self, i: int) -> bytes:
        return self.names[i * _NAME:i * _NAME + self.namelen].tobytes()

    def put(self, i: int, data: bytes) -> None:
        """Make `data` the reply of slot `i` (at most `slot` bytes)."""
        self.sview[i * self.slot:i * self.slot + len(data)] = data
        self.slens[2 * i + 1] = len(data)

    def skip(self, i: int) -> None:
        """Slot `i` gets no reply."""
        self.slens[2 * i + 1] = 0

    def send(self, n: int, every: bool) -> int:
        """Send the replies of slots 0..n-1 (`every`: all of them have one); how many went.
        A reply the kernel refuses (full buffer, unreachable peer) is dropped."""
        if every:
            return self._send_run(0, n)
        sent, i = 0, 0
        while i < n:
            j = i
            while j < n and self.slens[2 * j + 1]:
                j += 1
            if j > i:
                sent += self._send_run(i, j)
            i = j + 1
        return sent

    def _send_run(self, start: int, end: int) -> int:
        sent = 0
        base = ctypes.addressof(self._smsg)
        while start < end:
            done = _sendmmsg(self.fd, base + start * self._stride, end - start, MSG_DONTWAIT)
            if done <= 0:
                start += 1  # this one failed: drop it and go on with the rest
            else:
                sent, start = sent + done, start + done
        return sent


def peer(sockaddr: bytes) -> tuple:
    """The address tuple socket.sendto takes for a raw sockaddr_in / sockaddr_in6."""
    port = int.from_bytes(sockaddr[2:4], "big")
    if len(sockaddr) == 16:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8]), port
    scope = int.from_bytes(sockaddr[24:28], sys.byteorder)
    return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24]), port, 0, scope
