"""Opening listening sockets with errors that say what could not be bound, and why."""

import ipaddress
import socket


class BindError(OSError):
    """A socket could not be bound; the message names the address and the reason."""

    def __str__(self) -> str:
        return str(self.strerror)


def listen(kind: str, host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A bound (and, for "tcp", listening) non-blocking socket on host:port.

    `kind` is "tcp" or "udp". Raises BindError naming the address and the reason.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, sock_type)
    try:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == "tcp":
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise BindError(exc.errno, f"cannot listen on {kind} {where}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
