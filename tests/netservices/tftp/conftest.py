"""Fixtures of the TFTP tests: a served directory, the server in its own thread, a raw client."""

import asyncio
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from netservices.tftp import wire
from netservices.tftp.config import TftpConfig
from netservices.tftp.files import Chain, Directory, Rendered
from netservices.tftp.server import TftpServer

# File name -> size: around the block boundaries of 512 and 1468, and bigger ones.
SIZES = {"empty": 0, "one": 1, "b511": 511, "b512": 512, "b513": 513, "b1468": 1468,
         "b2936": 2936, "k100": 100_000, "m1": 1_048_576, "m3": 3_000_000}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    """A served root: SIZES random files, a subdirectory, and secrets beside the root."""
    base = tmp_path_factory.mktemp("tftp")
    root = base / "root"
    (root / "boot" / "sub").mkdir(parents=True)
    for name, size in SIZES.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "boot" / "sub" / "kernel").write_bytes(os.urandom(5000))
    (root / "text.cfg").write_bytes(b"DEFAULT menu\nLABEL a\r\n  KERNEL k\n")
    (base / "secret").write_bytes(b"outside the root\n")
    (base / "root-sibling").mkdir()
    (base / "root-sibling" / "file").write_bytes(b"sibling with the root as prefix\n")
    os.symlink("../secret", root / "link-out")
    os.symlink("/etc/passwd", root / "link-abs")
    os.symlink("boot/sub/kernel", root / "link-in")
    os.symlink("../root-sibling", root / "link-sibling")
    os.mkfifo(root / "fifo")
    return root


def eventually(check, timeout: float = 2.0) -> bool:
    """Whether `check()` turns true within `timeout` seconds: the workers report the end
    of a transfer and their counters a moment after the client has seen the last packet."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Running:
    """A TftpServer serving in its own thread and event loop; `stop()` ends it."""

    def __init__(self, cfg: TftpConfig, files):
        self.server = TftpServer(cfg, files, port=0)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.start())
        self.task = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.server.serve())
        self.loop.run_until_complete(self.task)

    @property
    def port(self) -> int:
        return self.server.addresses[0][1]

    @property
    def stats(self):
        return self.server.stats

    def stop(self):
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(5)
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.loop.close()


def menu_for(client, mac):
    return f"# menu for {mac} asked from {client[0]}\nDEFAULT local\n".encode()


def broken(client, **_):
    raise RuntimeError("renderer bug")


@pytest.fixture
def serve(tree):
    """Factory: `serve(files=None, **cfg)` runs a server on 127.0.0.1, a free port."""
    running = []

    def start(files=None, **cfg) -> Running:
        settings = {"enabled": True, "root": str(tree), "max_blksize": 65464,
                    "timeout": 0.3, "retries": 4, **cfg}
        if files is None:
            rendered = Rendered({r"pxelinux\.cfg/01-(?P<mac>([0-9a-f]{2}-){5}[0-9a-f]{2})": menu_for,
                                 r"broken": broken})
            files = Chain(rendered, Directory(tree))
        running.append(Running(TftpConfig(**settings), files))
        return running[-1]

    yield start
    for server in running:
        server.stop()


class Client:
    """A raw TFTP client socket for packet-level tests; every wait is bounded."""

    def __init__(self, port: int, timeout: float = 2.0):
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.peer = None

    def send(self, data: bytes, to=None):
        self.sock.sendto(data, to or self.peer or self.server)

    def recv(self):
        """(packet bytes, sender); remembers the first sender as the transfer ID."""
        data, sender = self.sock.recvfrom(70000)
        self.peer = self.peer or sender
        return data, sender

    def silent(self, wait: float = 0.5) -> bool:
        """True when nothing arrives within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            self.sock.recvfrom(70000)
        except TimeoutError:
            return True
        return False

    def get(self, name: str, options=None) -> bytes:
        """A whole lock-step download (ACKing every block, answering an OACK)."""
        self.send(wire.request(name, options))
        blksize, content = int((options or {}).get("blksize", 512)), b""
        while True:
            data, _ = self.recv()
            opcode, block = wire.HEADER.unpack_from(data)
            if opcode == wire.OACK:
                blksize = int(dict(_pairs(data[2:])).get("blksize", 512))
                self.send(wire.ack(0))
                continue
            assert opcode == wire.DATA, data
            content += data[4:]
            self.send(wire.ack(block))
            if len(data) - 4 < blksize:
                return content

    def close(self):
        self.sock.close()


def _pairs(body: bytes):
    parts = body.split(b"\0")[:-1]
    return [(parts[i].decode(), parts[i + 1].decode()) for i in range(0, len(parts), 2)]


def oack_options(data: bytes) -> dict[str, str]:
    assert data[:2] == b"\0\x06", data
    return dict(_pairs(data[2:]))


@pytest.fixture
def client():
    made = []

    def make(port: int, timeout: float = 2.0) -> Client:
        made.append(Client(port, timeout))
        return made[-1]

    yield make
    for c in made:
        c.close()
