"""The blocks of one transfer, and the content made ready for a worker process.

`to_file(content)` turns what a `Files` returned into a regular file a worker reads with
`os.pread`: a regular file as it is, bytes and other streams copied into a memfd.
`FileBlocks` cuts such a file into blocks, reading large chunks (no system call per
block, safe to re-read for retransmissions); `BytesBlocks` and `StreamBlocks` do the
same for bytes and for a stream read in order (unacknowledged blocks kept for
retransmission). Netascii (RFC 1350, RFC 764 line ends) is converted in memory, up to
`NETASCII_LIMIT` bytes.
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

    release = None  # nothing to let go of: every block can be cut again

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

    release = None  # nothing to let go of: any block can be read again

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
