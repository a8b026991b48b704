"""One worker process (`worker.py`) run to completion or killed at its deadline.

The worker runs in a session of its own, so that killing its process group also kills
whatever a tasklet started (a shell, a `sleep`). It is killed when its time is up, and
in any case once it has answered: a tasklet leaves no process behind. Its output is
kept up to `MAX_OUTPUT` bytes.
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")
MAX_OUTPUT = 1 << 20
GRACE = 0.2
"""Seconds to keep reading output after the worker answered (programs it started)."""


@dataclass
class Finished:
    """How a worker process ended: its answer, its output, whether it was killed."""

    answer: bytes
    output: str
    timed_out: bool
    returncode: int
    duration: float


def run_worker(request: dict, timeout: float) -> Finished:
    """Run the worker on `request` (JSON); kill it and its children after `timeout` s."""
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-u", str(WORKER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died at once; its output says why
    answer, output, timed_out = _collect(proc, began + timeout)
    ended = time.monotonic()
    _kill_group(proc)
    output += _drain(proc.stderr, MAX_OUTPUT - len(output))
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return Finished(bytes(answer), _text(output), timed_out, proc.returncode, ended - began)


def _collect(proc: subprocess.Popen, deadline: float) -> tuple[bytearray, bytearray, bool]:
    """Read answer and output until the worker closed its answer (it exited) or the deadline."""
    answer, output = bytearray(), bytearray()
    answered = None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, answer)
        sel.register(proc.stderr, selectors.EVENT_READ, output)
        while sel.get_map():
            left = (answered + GRACE if answered else deadline) - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    answered = time.monotonic() if key.data is answer else answered
                elif key.data is answer:
                    answer += chunk
                else:
                    output += chunk[:max(MAX_OUTPUT - len(output), 0)]
    return answer, output, answered is None


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's process group (its pid: it leads its session; not reaped yet)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _drain(pipe, room: int) -> bytes:
    """What is left in the output pipe once the group is dead, at most `room` bytes kept.

    Bounded in time too: a program that left the session may still hold the pipe open.
    """
    kept, deadline = b"", time.monotonic() + GRACE
    with selectors.DefaultSelector() as sel:
        sel.register(pipe, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and sel.select(left):
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            kept += chunk[:max(room - len(kept), 0)]
    return kept


def _text(output: bytearray | bytes) -> str:
    text = bytes(output).decode("utf-8", errors="replace")
    if len(output) >= MAX_OUTPUT:
        text += f"\n[output cut at {MAX_OUTPUT} bytes]\n"
    return text
