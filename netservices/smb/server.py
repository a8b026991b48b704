"""The SMB server: impacket's SMBSERVER, configured in code, with its defects fixed.

What differs from impacket's own server (see LIBRARY-NOTES and `commands`):
- shares, users and options come from an `SmbConfig`, never from a file; the root
  logger is never touched (impacket's setLogFile runs logging.basicConfig(force=True));
- a fresh random NTLM challenge for every connection (impacket: AAAAAAAA… unless set);
- impacket's log line of every authentication — a crackable NetNTLMv2 hash — is dropped;
  the rest of its chatter goes to the "netservices.smb" logger at debug level;
- IPC$ serves the srvsvc pipe in-process (share lists) and nothing else;
- `stop()` returns within a couple of seconds with clients connected: connections are
  daemon threads whose sockets are shut down, and their open files are closed;
- SMB2 only, and READ answered by `wire` straight from the file (about 10x faster).
"""

import configparser
import logging
import os
import selectors
import socket
import socketserver
import threading
import time

from impacket import ntlm
from impacket.smbserver import SMBSERVER, SRVSServer

from netservices.smb import wire
from netservices.smb.commands import IPC, Guards
from netservices.smb.config import SmbConfig
from netservices.smb.policy import Policy
from netservices.sockets import BindError

log = logging.getLogger("netservices.smb")
IDLE_TIMEOUT = 600.0  # seconds a connection may stay silent (clients send echoes)
STOP_GRACE = 2.0  # seconds stop() waits for connection threads to end


def impacket_config(cfg: SmbConfig, policy: Policy) -> configparser.ConfigParser:
    """The ConfigParser that impacket's server reads, built from `cfg`."""
    config = configparser.ConfigParser(interpolation=None)
    config["global"] = {
        "server_name": cfg.server_name, "server_os": "PyLabs", "server_domain": cfg.workgroup,
        "log_file": "None", "credentials_file": "", "SMB2Support": "True",
        "anonymous_logon": str(policy.guest_allowed), "KerberosSupport": "False",
    }
    config[IPC] = {"comment": "", "read only": "yes", "share type": "3", "path": ""}
    for share in cfg.shares:
        config[share.name.upper()] = {"comment": share.comment, "share type": "0", "path": share.path,
                                      "read only": "yes" if share.read_only else "no"}
    return config


class SmbServer(SMBSERVER):
    """impacket's server with the fixes above; `serve()` blocks until `stop()`."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, cfg: SmbConfig, *, port: int | None = None):
        """Bind `cfg.listen`:`cfg.port` (or `port`; 0 picks a free one, for tests);
        BindError says which address could not be bound and why."""
        self.cfg = cfg
        self.policy = Policy(cfg)
        self._local = threading.local()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._done.set()
        host, port = str(cfg.listen), cfg.port if port is None else port
        try:
            super().__init__((host, port), handler_class=Handler,
                             config_parser=impacket_config(cfg, self.policy),
                             ipv6=cfg.listen.version == 6)
        except OSError as exc:
            where = f"[{host}]:{port}" if cfg.listen.version == 6 else f"{host}:{port}"
            raise BindError(exc.errno, f"cannot listen on tcp {where}: {exc.strerror}") from None
        self.processConfigFile()
        for user in cfg.users:
            self.addCredential(user.name, 0, "", ntlm.compute_nthash(user.password).hex())
        Guards(self, self.policy, self._open_pipe).install()

    @property
    def address(self) -> tuple[str, int]:
        return self.socket.getsockname()[:2]

    # -- life cycle -------------------------------------------------------------------

    def serve(self) -> None:
        """Accept connections until `stop()`; each is served by its own daemon thread."""
        self._done.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    if selector.select(0.2):
                        self._handle_request_noblock()
        finally:
            self._done.set()

    def stop(self) -> None:
        """Stop accepting, disconnect every client, wait briefly for their threads."""
        self._stopping.set()
        self._done.wait(1.0)
        self.server_close()
        with self._lock:
            clients = list(self._clients.items())
        for sock, _ in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        for _, thread in clients:
            thread.join(max(0.0, deadline - time.monotonic()))

    def verify_request(self, request, client_address) -> bool:
        with self._lock:
            if self._stopping.is_set() or len(self._clients) >= self.cfg.max_connections:
                log.info("smb.refused", extra={"peer": client_address[0], "clients": len(self._clients)})
                return False
            self._clients[request] = None
        return True

    def track(self, sock: socket.socket, thread: threading.Thread | None) -> None:
        with self._lock:
            if thread is None:
                self._clients.pop(sock, None)
            else:
                self._clients[sock] = thread

    def handle_error(self, request, client_address) -> None:
        log.warning("smb.connection_failed", exc_info=True, extra={"peer": client_address[0]})

    # -- impacket hooks ---------------------------------------------------------------

    def getSMBChallenge(self) -> bytes:  # noqa: N802 - impacket's name
        """A random challenge per connection (each is served by its own thread)."""
        challenge = getattr(self._local, "challenge", None)
        if challenge is None:
            challenge = self._local.challenge = os.urandom(8)
        return challenge

    def log(self, msg, level=logging.INFO, connData=None) -> None:  # noqa: N803
        challenge = getattr(self._local, "challenge", None)
        if challenge is not None and challenge.hex() in str(msg).lower():
            return  # impacket's NetNTLM hash line of an authentication: never written
        log.debug("impacket: %s", msg)

    def processRequest(self, connId, data):  # noqa: N802, N803
        wire.check_protocol(data)
        fast = self._fast_read(connId, data)
        if fast is not None:
            return [fast]
        return super().processRequest(connId, data)

    def _fast_read(self, conn_id: str, data: bytes) -> list | None:
        """The reply to a plain READ of an open file, or None to let impacket answer."""
        parsed = wire.read_request(data)
        if parsed is None:
            return None
        header, (_, _, _, length, offset, file_id, *_) = parsed
        conn = self.getConnectionData(conn_id, checkStatus=False)
        entry = conn["OpenedFiles"].get(file_id)
        if (not conn["Authenticated"] or header[10] not in conn["ConnectedShares"] or entry is None
                or entry["FileHandle"] < 0 or not 0 < length <= wire.MAX_IO):
            return None
        try:
            payload = os.pread(entry["FileHandle"], length, offset)
        except OSError:
            return None
        if not payload:
            return None  # end of file: impacket's reply
        key = conn["SigningSessionKey"] if conn["SignatureEnabled"] else None
        return wire.read_response(header, conn["Uid"], payload, key)

    def _open_pipe(self, name: str) -> socket.socket:
        """One end of a socket pair whose other end a thread serves as pipe `name`."""
        ours, theirs = socket.socketpair()
        threading.Thread(target=_serve_srvsvc, args=(theirs, self.getServerConfig()),
                         name=f"smb-{name}", daemon=True).start()
        return ours


def _serve_srvsvc(sock: socket.socket, config: configparser.ConfigParser) -> None:
    """impacket's MS-SRVS server (NetShareEnum) over one in-process socket: no listener."""
    rpc = SRVSServer()
    rpc._sock.close()  # it binds a loopback port it would listen on; unused here
    rpc.set_client_socket(sock)
    rpc.setServerConfig(config)
    rpc.processConfigFile()
    try:
        while (request := rpc.recv()) is not None:
            answer = rpc.processRequest(request)
            if answer is not None:
                rpc.send(answer)
    except Exception:  # noqa: BLE001 - a broken pipe or bad RPC ends this pipe only
        log.debug("smb.srvsvc_failed", exc_info=True)
    finally:
        sock.close()


class Handler(socketserver.BaseRequestHandler):
    """One client connection: NetBIOS-framed SMB2 messages in, replies out."""

    server: SmbServer

    def setup(self) -> None:
        self.conn_id = threading.current_thread().name
        self.server.track(self.request, threading.current_thread())
        self.server.addConnection(self.conn_id, *self.client_address[:2])
        self.request.settimeout(IDLE_TIMEOUT)

    def handle(self) -> None:
        try:
            self._loop()
        except (OSError, EOFError):
            pass  # the client went away, timed out, or stop() shut the socket
        except wire.Malformed as exc:
            log.debug("smb.malformed", extra={"peer": self.client_address[0], "error": str(exc)})
        except Exception:  # noqa: BLE001 - one bad request ends its connection, never the server
            log.warning("smb.request_failed", exc_info=True, extra={"peer": self.client_address[0]})

    def _loop(self) -> None:
        while True:
            kind, length = wire.parse_frame_header(self._recv(4))
            data = self._recv(length)
            if kind == wire.NBSS_REQUEST:
                self.request.sendall(bytes([wire.NBSS_POSITIVE, 0, 0, 0]))
            elif kind == wire.NBSS_MESSAGE:
                for reply in self.server.processRequest(self.conn_id, data):
                    self._send(reply)

    def _recv(self, size: int) -> bytes:
        buf = bytearray(size)
        view, got = memoryview(buf), 0
        while got < size:
            n = self.request.recv_into(view[got:])
            if n == 0:
                raise EOFError
            got += n
        return bytes(buf)

    def _send(self, reply) -> None:
        if not isinstance(reply, list):
            data = reply.getData() if hasattr(reply, "getData") else reply
            reply = [wire.frame(len(data)), data]
        views = [memoryview(b) for b in reply]
        while views:
            sent = self.request.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if views:
                views[0] = views[0][sent:]

    def finish(self) -> None:
        conn = self.server.getActiveConnections().get(self.conn_id) or {}
        for entry in conn.get("OpenedFiles", {}).values():
            try:
                if "Socket" in entry:
                    entry["Socket"].close()
                elif entry["FileHandle"] >= 0:
                    os.close(entry["FileHandle"])
            except OSError:
                pass
        self.server.removeConnection(self.conn_id)
        self.server.track(self.request, None)
