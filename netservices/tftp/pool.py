"""The TFTP server's worker processes, seen from the server's event loop.

A fixed pool of `count` processes (worker.py), each with a SOCK_SEQPACKET socket pair
to the server: a transfer goes to the worker with the fewest running, as JSON plus
three descriptors; reports come back on the same socket, read by a loop reader. Sends
to a worker never block the loop: a worker whose queue is full gets no job (the
request stays unanswered and the client sends it again).

A worker that dies is noticed at once: the kernel closes its end of the socket. Its
transfers are handed to `on_crash` and a new worker takes its place — unless that one
was itself a replacement that died within `MIN_LIFE` seconds of starting: then the pool
is `failed` (a worker that cannot run would otherwise be restarted in a loop; the
component's supervisor restarts the whole server with a backoff instead). A worker that
is alive but hung (a loop that no longer turns: it says "alive" every second) is killed
after `hung` seconds of silence, and then handled as one that died. Stopping
closes the sockets — the workers exit on that — and kills whoever is still there after
the grace period.
"""

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time

log = logging.getLogger("netservices.tftp")

STARTUP = 30.0  # seconds a new worker may take to say it is ready (a loaded machine)
MIN_LIFE = 1.0  # a replacement dying younger than this is not replaced
HUNG = 10.0  # seconds without a word from a worker before it is killed as hung
MESSAGE = 65536


class PoolError(RuntimeError):
    """The pool could not start or keep its workers."""


class Worker:
    """One worker process: its socket, the transfers it runs, how many it has served."""

    def __init__(self, index: int, proc: subprocess.Popen, sock: socket.socket):
        self.index, self.proc, self.sock = index, proc, sock
        self.started = self.heard = time.monotonic()
        self.jobs: set[int] = set()
        self.served = 0
        self.replacement = False
        self.ready: asyncio.Future | None = None


class Pool:
    """`count` workers; `on_message(worker, kind, args)` gets their reports and
    `on_crash(worker)` each dead worker (its `jobs` still running)."""

    def __init__(self, count: int, settings: dict, on_message, on_crash):
        self.count, self.settings = count, settings
        self.on_message, self.on_crash = on_message, on_crash
        self.workers: list[Worker | None] = [None] * count
        self.failed: asyncio.Future | None = None
        self.stopping = False
        self.hung = HUNG
        self._tasks: set[asyncio.Task] = set()

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w is not None]

    async def start(self) -> None:
        """Start every worker; PoolError when one does not come up."""
        self.failed = asyncio.get_running_loop().create_future()
        try:
            await asyncio.gather(*(self._spawn(i) for i in range(self.count)))
        except BaseException:
            await self.stop()
            raise
        self._track(asyncio.get_running_loop().create_task(self._watch()))

    def submit(self, job: dict, fds: list[int]) -> Worker | None:
        """Hand `job` to the least busy worker; None when none can take it now."""
        alive = [w for w in self.workers if w is not None]
        for worker in sorted(alive, key=lambda w: len(w.jobs)):
            try:
                socket.send_fds(worker.sock, [json.dumps(job).encode()], fds)
            except (BlockingIOError, InterruptedError):
                continue  # its queue is full: try the next one
            except OSError:
                continue  # dying: its end-of-file is on its way
            worker.jobs.add(job["id"])
            worker.served += 1
            return worker
        return None

    async def stop(self, grace: float = 2.0) -> None:
        """Close every worker's socket, wait up to `grace` seconds, kill the rest."""
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        workers = [w for w in self.workers if w is not None]
        self.workers = [None] * self.count
        for worker in workers:
            self._detach(worker)
        deadline = time.monotonic() + grace
        while any(w.proc.poll() is None for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()

    async def _spawn(self, index: int, replacement: bool = False) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "netservices.tftp.worker", str(theirs.fileno()),
                 json.dumps(self.settings)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise PoolError(f"cannot start a tftp worker: {exc}") from None
        finally:
            theirs.close()
        ours.setblocking(False)
        worker = Worker(index, proc, ours)
        worker.replacement = replacement
        loop = asyncio.get_running_loop()
        worker.ready = loop.create_future()
        self.workers[index] = worker
        loop.add_reader(ours.fileno(), self._on_readable, worker)
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), STARTUP)
        except (TimeoutError, PoolError) as exc:
            raise PoolError(f"tftp worker {index} did not start: {exc or 'timeout'}") from None
        worker.started = time.monotonic()

    def _on_readable(self, worker: Worker) -> None:
        for _ in range(64):
            try:
                data = worker.sock.recv(MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                return self._gone(worker)
            worker.heard = time.monotonic()
            try:
                kind, *args = json.loads(data)
                if kind == "alive":
                    continue
                if kind == "ready":
                    if not worker.ready.done():
                        worker.ready.set_result(args[0])
                else:
                    self.on_message(worker, kind, args)
            except Exception:
                log.error("tftp.worker_message_failed", exc_info=True)

    def _gone(self, worker: Worker) -> None:
        """End of file from `worker`: it died (or is dying)."""
        self._detach(worker)
        if self.workers[worker.index] is worker:
            self.workers[worker.index] = None
        if not worker.ready.done():
            worker.ready.set_exception(PoolError(f"exited with {worker.proc.wait()}"))
            return
        if self.stopping:
            return
        young = worker.replacement and time.monotonic() - worker.started < MIN_LIFE
        self._track(asyncio.get_running_loop().create_task(self._replace(worker, young)))
        self.on_crash(worker)

    def _track(self, task: asyncio.Task) -> None:
        self._tasks.add(task)  # cancelled by stop()
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        """Kill a worker silent for `hung` seconds: its end of file then does the rest."""
        while True:
            await asyncio.sleep(min(1.0, self.hung / 4))
            now = time.monotonic()
            for worker in self.workers:
                if worker is None or not worker.ready.done() or now - worker.heard < self.hung:
                    continue
                if worker.proc.poll() is None:
                    log.error("tftp.worker_hung", extra={"fields": {
                        "worker": worker.index, "pid": worker.proc.pid,
                        "silent": round(now - worker.heard, 1), "transfers": len(worker.jobs)}})
                    worker.proc.kill()
                worker.heard = now  # killed once; its end of file is on its way

    async def _replace(self, worker: Worker, young: bool) -> None:
        for _ in range(100):  # reap it (its socket closes just before it exits)
            if worker.proc.poll() is not None:
                break
            await asyncio.sleep(0.01)
        else:
            worker.proc.kill()
            worker.proc.wait()
        log.error("tftp.worker_died", extra={"fields": {
            "worker": worker.index, "pid": worker.proc.pid, "status": worker.proc.returncode,
            "transfers": len(worker.jobs)}})
        if young:
            self._fail(PoolError(f"tftp worker {worker.index} died {worker.proc.returncode} "
                                 f"within {MIN_LIFE} s of starting"))
            return
        try:
            await self._spawn(worker.index, replacement=True)
        except PoolError as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self.failed is not None and not self.failed.done():
            self.failed.set_exception(exc)

    def _detach(self, worker: Worker) -> None:
        try:
            asyncio.get_running_loop().remove_reader(worker.sock.fileno())
        except (RuntimeError, ValueError):
            pass
        worker.sock.close()
