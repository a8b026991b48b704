"""The DATA packets of one transfer, and the content made ready for a worker process.

`to_file(content)` turns what a `Files` returned into a regular file a worker reads with
`os.pread`: a regular file as it is, bytes and other streams copied into a memfd — so
every transfer knows its size. `FileBlocks` cuts such a file into DATA packets a chunk
at a time: one `pread` and one list comprehension per CHUNK bytes, so that the ACK of a
block costs a list slice, not a read and a packet built (the per-block cost is what
bounds a worker serving many clients); `ahead` cuts the next chunk once a window is
sent, while the client works, and keeps the unacknowledged blocks for a resend.
Netascii (RFC 1350, RFC 764 line ends) is converted in memory, up to `NETASCII_LIMIT`
bytes.
"""

import io
import os
import stat

from netservices.tftp.wire import DATA, HEADER

CHUNK = 16 * 1024  # bytes read and cut into packets at once: a cut hides behind a client's turn
NETASCII_LIMIT = 64 * 1024 * 1024


class TooLarge(Exception):
    """Netascii content larger than NETASCII_LIMIT."""


class FileBlocks:
    """`size` bytes of a regular file from `offset`, as DATA packets of `blksize` bytes
    (blocks numbered from 1; on the wire they roll over at 2**16). The file is never
    read past `size`: one that grows meanwhile is cut there, one that shrinks ends early
    with a short block."""

    def __init__(self, stream, blksize: int, offset: int, size: int, chunk: int = CHUNK):
        self.stream, self.fd, self.blksize = stream, stream.fileno(), blksize
        self.offset, self.size = offset, size
        self.per_chunk = max(1, chunk // blksize)
        self.first = 0  # number of the first block in `built`; 0: nothing read yet
        self.built: list[bytes] = []
        self.end = 0  # the block after the last one in `built`

    def packets(self, first: int, end: int) -> list[bytes]:
        """DATA for blocks first … end-1, up to the first short one (the file's last)."""
        if first >= self.first and end <= self.end:
            return self.built[first - self.first:end - self.first]  # the usual case
        packets: list[bytes] = []
        n = first
        while n < end:
            if not self.first <= n < self.end:
                self._hold(n, self._cut(n))
            got = self.built[n - self.first:end - self.first]
            packets += got
            n += len(got)
            if len(got[-1]) - 4 < self.blksize:
                break
        return packets

    def ahead(self, keep: int, end: int) -> None:
        """Have blocks up to end-1 cut before they are asked for, keeping those from
        `keep` on (a window may be sent again) and letting go of the ones before: called
        once a window is sent, while the client works, it keeps cutting a chunk off the
        path from an ACK to the next DATA."""
        while self.end < end and self.built and len(self.built[-1]) - 4 == self.blksize:
            if not self.first <= keep <= self.end:
                break  # nothing to keep: `packets` cuts what it needs when asked
            self._hold(keep, self.built[keep - self.first:] + self._cut(self.end))

    def _hold(self, first: int, built: list[bytes]) -> None:
        """Keep `built`, the packets of blocks first, first+1, …"""
        self.first, self.built, self.end = first, built, first + len(built)

    def _cut(self, n: int) -> list[bytes]:
        """The chunk that starts with block n, as packets."""
        blksize, pack = self.blksize, HEADER.pack
        start = (n - 1) * blksize
        length = max(0, min(self.per_chunk * blksize, self.size - start))
        data = os.pread(self.fd, length, self.offset + start)
        view = memoryview(data)
        built = [pack(DATA, (n + i) & 0xFFFF) + view[at:at + blksize]
                 for i, at in enumerate(range(0, len(data), blksize))]
        return built or [pack(DATA, n & 0xFFFF)]  # past the end: the empty last block

    def close(self) -> None:
        self.built = []
        self.stream.close()


def to_netascii(data: bytes) -> bytes:
    """RFC 764: CR becomes CR NUL and LF becomes CR LF (already-CRLF text too)."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def prepare(content, mode: str):
    """Content ready to cut: netascii converted to bytes, anything else unchanged."""
    if mode != "netascii":
        return content
    if not isinstance(content, bytes):
        with content:
            data = content.read(NETASCII_LIMIT + 1)
        if len(data) > NETASCII_LIMIT:
            raise TooLarge(f"more than {NETASCII_LIMIT} bytes in netascii mode")
        content = data
    return to_netascii(bytes(content))


STREAM_LIMIT = 256 * 1024 * 1024  # bytes of a stream (not a regular file) copied to memory


def to_file(content):
    """(file, offset, size): a regular file a worker process can read with pread.

    A regular file is passed as it is (from its current position); bytes and any other
    stream are copied into an anonymous memory file (memfd), up to STREAM_LIMIT bytes.
    """
    if not isinstance(content, bytes | bytearray | memoryview):
        try:
            info = os.fstat(content.fileno())
            if stat.S_ISREG(info.st_mode):
                offset = content.tell()
                return content, offset, max(0, info.st_size - offset)
        except (OSError, io.UnsupportedOperation, AttributeError):
            pass
    fd = os.memfd_create("tftp", os.MFD_CLOEXEC)
    memory = os.fdopen(fd, "r+b", buffering=0)
    try:
        size = _copy(content, memory)
    except BaseException:
        memory.close()
        raise
    return memory, 0, size


def _copy(content, memory) -> int:
    size = 0
    for chunk in [content] if isinstance(content, bytes | bytearray | memoryview) else _chunks(content):
        size += len(chunk)
        if size > STREAM_LIMIT:
            raise TooLarge(f"more than {STREAM_LIMIT} bytes in a stream")
        view = memoryview(chunk)
        while view:  # a raw file's write may be partial
            view = view[memory.write(view):]
    return size


def _chunks(stream):
    with stream:
        while chunk := stream.read(CHUNK):
            yield chunk
