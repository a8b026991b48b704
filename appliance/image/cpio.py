"""A gzip-compressed cpio archive in the "newc" format: what the kernel unpacks as initramfs.

Written in Python so that the build needs no `cpio` and does not depend on the files'
owners on the build machine: every entry is root-owned, with a fixed mtime, so the same
inputs give the same bytes (see Documentation/driver-api/early-userspace/buffer-format.rst).
"""

import gzip
import io
import stat

_TRAILER = "TRAILER!!!"


class Archive:
    """Entries added in order; `gzip()` returns the compressed archive."""

    def __init__(self, mtime: int = 0):
        self._out = io.BytesIO()
        self._ino = 1
        self._mtime = mtime
        self._names: set[str] = set()

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, b"", nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def device(self, name: str, kind: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A device node; `kind` is "c" (character) or "b" (block)."""
        fmt = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        self._entry(name, fmt | mode, b"", rdev=(major, minor))

    def names(self) -> set[str]:
        return set(self._names)

    def gzip(self, level: int = 6) -> bytes:
        """The archive with its trailer, gzip-compressed (mtime 0: reproducible)."""
        out = io.BytesIO(self._out.getvalue())
        out.seek(0, io.SEEK_END)
        _write_entry(out, _TRAILER, 0, 0, b"", 1, (0, 0), 0)
        return gzip.compress(out.getvalue(), compresslevel=level, mtime=0)

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1,
               rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.strip("/")
        if name in self._names:
            raise ValueError(f"{name}: already in the archive")
        self._names.add(name)
        _write_entry(self._out, name, self._ino, mode, data, nlink, rdev, self._mtime)
        self._ino += 1


def _write_entry(out: io.BytesIO, name: str, ino: int, mode: int, data: bytes, nlink: int,
                 rdev: tuple[int, int], mtime: int) -> None:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
    out.write(encoded)
    _pad(out)
    out.write(data)
    _pad(out)


def _pad(out: io.BytesIO) -> None:
    out.write(b"\0" * (-out.tell() % 4))
