"""A TFTP worker process: runs the transfers its parent hands it, with the engine's loop.

    python -m netservices.tftp.worker CONTROL_FD SETTINGS_JSON

CONTROL_FD is this end of a SOCK_SEQPACKET socket pair with the server (pool.py). Each
message from the parent is one transfer to run: JSON (its id, negotiated options, size
and offset) with three descriptors attached (SCM_RIGHTS): the content (a regular file
or a memfd), the socket connected to the client and the stray socket on the same port.
The worker answers with JSON messages: `["ready", pid]` once, then `["end", id,
fields]` per transfer and `["count", counts, notes]` (see engine.py), and `["alive"]`
every PARENT_CHECK seconds: a worker that stops sending it is hung (pool.py).

The worker exits when the control socket closes — the parent stopped or died (the
kernel closes its end) — or when its parent process changes. SIGINT is ignored: a
Ctrl-C reaches the whole process group, and stopping is the parent's decision.
"""

import json
import os
import resource
import signal
import socket
import sys
import time
import traceback

from netservices.tftp.blocks import FileBlocks
from netservices.tftp.engine import Engine
from netservices.tftp.session import Limits, Options, Transfer

FDS = 3  # per job: content, connected socket, stray socket
MESSAGE = 65536
PARENT_CHECK = 1.0  # seconds between two checks that the parent is still ours


class Worker:
    def __init__(self, control: socket.socket, settings: dict):
        self.control = control
        self.limits = Limits(**settings["limits"])
        self.engine = Engine(self.report, busy_poll=settings.get("busy_poll", 0.0),
                             gso=settings.get("gso", False))
        self.engine.watch(control.fileno(), self.on_control)
        self.parent = os.getppid()
        self.running = True

    def run(self) -> None:
        self.report("ready", os.getpid())
        next_check = time.monotonic() + PARENT_CHECK
        while self.running:
            self.engine.run_once(PARENT_CHECK)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + PARENT_CHECK
                self.running = self.running and os.getppid() == self.parent
                self.report("alive")
        self.engine.close_all()

    def report(self, kind: str, *args) -> None:
        try:
            self.control.send(json.dumps([kind, *args]).encode())
        except OSError:
            self.running = False  # the parent is gone

    def on_control(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self.control, MESSAGE, FDS)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            self.running = False  # the parent closed its end: stop
        ident = None
        try:
            job = json.loads(data) if data else None
            ident = job["id"] if job else None
            if job and len(fds) != FDS:
                raise OSError(f"{len(fds)} descriptors received of {FDS}")
            if job:
                owned, fds = fds, []
                self.start(job, owned)  # owns them from here, closed on failure too
        except Exception:
            self.report("end", ident, {"result": "error", "bug": traceback.format_exc()})
        for fd in fds:
            os.close(fd)

    def start(self, job: dict, fds: list[int]) -> None:
        content = os.fdopen(fds[0], "rb", buffering=0)
        sock, stray = socket.socket(fileno=fds[1]), socket.socket(fileno=fds[2])
        try:
            options = Options(job["blksize"], job["windowsize"], job["timeout"], job["oack"])
            blocks = FileBlocks(content, options.blksize, job["offset"], job["size"])
            transfer = Transfer(blocks, options, self.limits, self.engine.clock())
            self.engine.add(job["id"], transfer, sock, stray)
        except BaseException:
            for owner in (content, sock, stray):
                owner.close()
            raise


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # three descriptors per transfer
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    control = socket.socket(fileno=int(argv[0]))
    Worker(control, json.loads(argv[1])).run()


if __name__ == "__main__":
    main(sys.argv[1:])
