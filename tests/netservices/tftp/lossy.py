"""A UDP relay that drops every Nth datagram each way: a lossy link for TFTP on loopback.

Clients send their request to `proxy.port`; the relay gives each client its own socket
towards the server and mirrors each server transfer ID (port) with a socket of its own
towards the client, so that TFTP's transfer IDs still work end to end.
"""

import selectors
import socket
import threading
from collections import Counter


class LossyProxy:
    def __init__(self, server_port: int, *, drop_to_client: int, drop_to_server: int):
        self.server_port = server_port
        self.nth = {"to_client": drop_to_client, "to_server": drop_to_server}
        self.seen, self.dropped = Counter(), Counter()
        self.sel = selectors.DefaultSelector()
        self.front = self._socket(("front", None))
        self.port = self.front.getsockname()[1]
        self.upstream: dict = {}  # client address -> socket towards the server
        self.downstream: dict = {}  # (client address, server port) -> socket towards the client
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _socket(self, role) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, role)
        return sock

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()

    def _run(self):
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.05):
                try:
                    data, sender = key.fileobj.recvfrom(70000)
                except OSError:
                    continue
                self._relay(key.data, data, sender)

    def _relay(self, role, data: bytes, sender) -> None:
        kind, ident = role
        if kind == "front":  # a request from a client
            self._pass("to_server", self._up(sender), data, ("127.0.0.1", self.server_port))
        elif kind == "up":  # from the server, for client `ident`
            down = self.downstream.get((ident, sender[1]))
            if down is None:
                down = self.downstream[(ident, sender[1])] = self._socket(("down", (ident, sender[1])))
            self._pass("to_client", down, data, ident)
        else:  # from the client, to the server transfer `ident`
            client, server_port = ident
            self._pass("to_server", self._up(client), data, ("127.0.0.1", server_port))

    def _up(self, client) -> socket.socket:
        if client not in self.upstream:
            self.upstream[client] = self._socket(("up", client))
        return self.upstream[client]

    def _pass(self, way: str, sock: socket.socket, data: bytes, to) -> None:
        self.seen[way] += 1
        if self.seen[way] % self.nth[way] == 0:
            self.dropped[way] += 1
            return
        sock.sendto(data, to)
