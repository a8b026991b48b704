"""Fixtures of the SMB tests: a served tree, our server and plain impacket's, clients.

Every server listens on 127.0.0.1 on a port the kernel picks, runs in daemon threads,
and is stopped within the test's bounds; plain impacket (whose stop hangs while clients
are connected) is stopped by closing its client sockets first.
"""

import hashlib
import os
import socketserver
import threading
import time
from pathlib import Path

import pytest
from impacket import ntlm
from impacket.smb3structs import SMB2_DIALECT_002
from impacket.smbconnection import SMBConnection
from impacket.smbserver import SimpleSMBServer

from netservices.smb.config import SmbConfig
from netservices.smb.server import SmbServer

USER, PASSWORD = "alice", "s3cret"
LARGE = 48 * 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    """base/media (the share), base/media2 (a sibling whose name has media as prefix),
    base/private (a share for named users), base/secret.txt (beside them)."""
    base = tmp_path_factory.mktemp("smb")
    media = base / "media"
    (media / "sources" / "deep").mkdir(parents=True)
    (media / "boot.wim").write_bytes(os.urandom(300_000))
    (media / "large.iso").write_bytes(os.urandom(LARGE))
    (media / "sources" / "install.wim").write_bytes(os.urandom(70_000))
    (media / "sources" / "deep" / "setup.cfg").write_text("[setup]\nkey=value\n")
    (media / "sources" / "empty").write_bytes(b"")
    (base / "media2").mkdir()
    (base / "media2" / "secret.txt").write_text("sibling secret\n")
    (base / "private").mkdir()
    (base / "private" / "license.txt").write_text("for alice only\n")
    (base / "secret.txt").write_text("outside every share\n")
    os.symlink("../secret.txt", media / "link-out")
    os.symlink("sources/install.wim", media / "link-in")
    return base


def config(tree: Path, **overrides) -> SmbConfig:
    values = {
        "enabled": True,
        "shares": [{"name": "media", "path": str(tree / "media")},
                   {"name": "private", "path": str(tree / "private"), "guest": False,
                    "users": [USER]}],
        "users": [{"name": USER, "password": PASSWORD}],
    } | overrides
    return SmbConfig(**values)


class Ours:
    """Our SmbServer serving in a thread; `stop()` returns how long stopping took."""

    def __init__(self, cfg: SmbConfig):
        self.server = SmbServer(cfg, port=0)
        self.port = self.server.address[1]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def stop(self) -> float:
        began = time.monotonic()
        self.server.stop()
        self.thread.join(5)
        return time.monotonic() - began


class Plain:
    """impacket's SimpleSMBServer as its documentation sets it up, in a daemon thread."""

    def __init__(self, tree: Path, credentials: bool = False):
        self.simple = SimpleSMBServer("127.0.0.1", 0)
        self.simple.setSMB2Support(True)
        self.simple.addShare("MEDIA", str(tree / "media"), readOnly="yes")
        if credentials:
            self.simple.addCredential(USER, 0, "", ntlm.compute_nthash(PASSWORD).hex())
        self.server = self.simple.getServer()
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Bounded: stop accepting, then close without waiting for client threads."""
        self.server.shutdown()
        self.server.block_on_close = False
        socketserver.TCPServer.server_close(self.server)


@pytest.fixture(scope="module")
def ours(tree):
    running = Ours(config(tree))
    yield running
    running.stop()


@pytest.fixture
def plain(tree):
    running = Plain(tree)
    yield running
    running.stop()


def connect(port: int, user: str = "", password: str = "") -> SMBConnection:
    """impacket's own client, logged on (anonymous without a user), SMB 2.0.2."""
    conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port, preferredDialect=SMB2_DIALECT_002,
                         timeout=10)
    conn.login(user, password)
    return conn
