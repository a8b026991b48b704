"""Where the bytes of a TFTP read come from: the `Files` interface and its implementations.

The server asks a `Files` for a path on behalf of a client, as pixiecore's TFTP
`Handler(path, client)` does:

    files = Chain(Rendered({r"pxelinux\\.cfg/01-(?P<mac>[0-9a-f-]{17})": menu_for}),
                  Directory("/var/lib/appliance/tftp"))

The answer is bytes, a binary stream (a regular file is read with pread, others
sequentially) or None for "no such file". Raising `Refused` answers "access violation".
Every path has already passed `clean_path` when a `Files` sees it.
"""

import os
import re
import stat
from collections.abc import Callable
from typing import BinaryIO, Protocol

Client = tuple  # (host, port, ...) as the socket reports the peer
Content = bytes | BinaryIO


class Refused(Exception):
    """The path may not be read; the message (for the log) says why."""


class Files(Protocol):
    def open(self, path: str, client: Client) -> Content | None:
        """The content of `path` for `client`; None: no such file; raise Refused: denied."""


def clean_path(raw: str) -> str:
    """The relative path a request names; raises Refused for anything that could escape.

    Windows boot loaders (wdsnbp, bootmgr) send backslashes: they are separators here.
    Refused: NUL bytes, absolute paths, any ".." component, empty names.
    """
    if "\0" in raw:
        raise Refused("NUL byte in path")
    path = raw.replace("\\", "/")
    if path.startswith("/"):
        raise Refused("absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused("'..' in path")
    if not parts:
        raise Refused("empty path")
    return "/".join(parts)


class Directory:
    """The regular files under `root`, read-only; symlinks may not lead out of it."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.realpath(root)

    def open(self, path: str, client: Client) -> BinaryIO | None:
        real = os.path.realpath(os.path.join(self.root, clean_path(path)))
        if os.path.commonpath([self.root, real]) != self.root:
            raise Refused("resolves outside the root")
        try:
            # O_NONBLOCK: opening a FIFO must not block the server; it is refused below.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise Refused(f"cannot open: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Refused("not a regular file")
        return os.fdopen(fd, "rb", buffering=0)


# First-stage loaders from Debian packages, under the names DHCP hands out (PXE-NOTES).
DEBIAN_LOADERS = {
    "undionly.kpxe": "/usr/lib/ipxe/undionly.kpxe",  # package ipxe: BIOS PXE -> iPXE
    "ipxe.efi": "/usr/lib/ipxe/ipxe.efi",  # UEFI x86-64 -> iPXE
    "snponly.efi": "/usr/lib/ipxe/snponly.efi",
    "pxelinux.0": "/usr/lib/PXELINUX/pxelinux.0",  # package pxelinux
    "lpxelinux.0": "/usr/lib/PXELINUX/lpxelinux.0",
    **{name: f"/usr/lib/syslinux/modules/bios/{name}"  # package syslinux-common
       for name in ("ldlinux.c32", "libutil.c32", "libcom32.c32", "menu.c32", "vesamenu.c32",
                    "chain.c32", "reboot.c32")},
}


class Aliases:
    """Fixed files under chosen names (names from the server's config, never the client)."""

    def __init__(self, names: dict[str, str]):
        self.names = dict(names)

    def open(self, path: str, client: Client) -> BinaryIO | None:
        target = self.names.get(path)
        if target is None:
            return None
        try:
            return open(target, "rb", buffering=0)  # noqa: SIM115 - the transfer closes it
        except FileNotFoundError:
            return None


Renderer = Callable[..., Content | None]


class Rendered:
    """Files made per request: regular expressions (matched against the whole path) to
    functions called as `fn(client, **named_groups)`."""

    def __init__(self, routes: dict[str, Renderer] | None = None):
        self.routes = []
        for pattern, fn in (routes or {}).items():
            self.add(pattern, fn)

    def add(self, pattern: str, fn: Renderer) -> None:
        """Serve paths matching `pattern` with `fn` (after the routes added before)."""
        self.routes.append((re.compile(pattern), fn))

    def open(self, path: str, client: Client) -> Content | None:
        for pattern, fn in self.routes:
            match = pattern.fullmatch(path)
            if match:
                return fn(client, **match.groupdict())
        return None


class Chain:
    """Ask several `Files` in turn; the first answer that is not None wins."""

    def __init__(self, *sources: Files):
        self.sources = sources

    def open(self, path: str, client: Client) -> Content | None:
        for source in self.sources:
            content = source.open(path, client)
            if content is not None:
                return content
        return None
