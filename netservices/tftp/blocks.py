"""The blocks of one transfer, cut from bytes, a regular file or a stream.

`blocks(content, mode, blksize)` picks the cheapest reader: slices of a memoryview for
bytes, `os.pread` of large chunks for a regular file (no per-block system call, safe to
re-read for retransmissions), sequential reads for any other stream (the blocks not yet
acknowledged are kept for retransmission). Netascii (RFC 1350, RFC 764 line ends) is
converted in memory, up to `NETASCII_LIMIT` bytes.
"""

import io
import os
import stat

CHUNK = 256 * 1024  # bytes read from a file at once
NETASCII_LIMIT = 64 * 1024 * 1024


class TooLarge(Exception):
    """Netascii content larger than NETASCII_LIMIT."""


class BytesBlocks:
    def __init__(self, data: bytes, blksize: int):
        self.view, self.blksize, self.size = memoryview(data), blksize, len(data)

    def block(self, n: int) -> memoryview:
        start = (n - 1) * self.blksize
        return self.view[start:start + self.blksize]

    def release(self, upto: int) -> None:
        pass

    def close(self) -> None:
        self.view.release()


class FileBlocks:
    """A regular file read with pread from `offset`, CHUNK bytes at a time."""

    def __init__(self, stream, blksize: int, offset: int, size: int):
        self.stream, self.fd, self.blksize = stream, stream.fileno(), blksize
        self.offset, self.size = offset, size
        self.per_chunk = max(1, CHUNK // blksize)
        self.first = 0  # number of the first block in `view`; 0: nothing read
        self.view = memoryview(b"")

    def block(self, n: int) -> memoryview:
        index = n - self.first
        if self.first == 0 or not 0 <= index < self.per_chunk:
            self._read(n)
            index = 0
        start = index * self.blksize
        return self.view[start:start + self.blksize]

    def _read(self, n: int) -> None:
        # Never past the size announced (tsize, last block): a file that grows meanwhile
        # is cut there, one that shrinks ends early with a short block.
        start = (n - 1) * self.blksize
        length = max(0, min(self.per_chunk * self.blksize, self.size - start))
        data = os.pread(self.fd, length, self.offset + start)
        self.first, self.view = n, memoryview(data)

    def release(self, upto: int) -> None:
        pass

    def close(self) -> None:
        self.stream.close()


class StreamBlocks:
    """Any readable stream, read in order; unacknowledged blocks are kept for resending."""

    def __init__(self, stream, blksize: int, size: int | None):
        self.stream, self.blksize, self.size = stream, blksize, size
        self.kept: dict[int, bytes] = {}
        self.next = 1

    def block(self, n: int) -> bytes:
        while self.next <= n:
            self.kept[self.next] = self._read_full()
            self.next += 1
        return self.kept[n]

    def _read_full(self) -> bytes:
        parts, wanted = [], self.blksize
        while wanted:
            part = self.stream.read(wanted)
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def release(self, upto: int) -> None:
        for n in [n for n in self.kept if n <= upto]:
            del self.kept[n]

    def close(self) -> None:
        self.stream.close()


def to_netascii(data: bytes) -> bytes:
    """RFC 764: CR becomes CR NUL and LF becomes CR LF (already-CRLF text too)."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def size_of(content) -> int | None:
    """The byte count that will be sent, when it can be known before sending (tsize)."""
    if isinstance(content, bytes | bytearray | memoryview):
        return len(content)
    try:
        info = os.fstat(content.fileno())
        if stat.S_ISREG(info.st_mode):
            return max(0, info.st_size - content.tell())
    except (OSError, io.UnsupportedOperation, AttributeError):
        pass
    try:
        if content.seekable():
            here = content.tell()
            end = content.seek(0, io.SEEK_END)
            content.seek(here)
            return end - here
    except (OSError, AttributeError):
        pass
    return None


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


def blocks(content, blksize: int, size: int | None):
    """The block reader for `content` (see the module docstring)."""
    if isinstance(content, bytes | bytearray | memoryview):
        return BytesBlocks(bytes(content), blksize)
    try:
        if size is not None and stat.S_ISREG(os.fstat(content.fileno()).st_mode):
            return FileBlocks(content, blksize, content.tell(), size)
    except (OSError, io.UnsupportedOperation, AttributeError):
        pass
    return StreamBlocks(content, blksize, size)
