"""Running one job on this machine: tasklets through the engine, scripts through /bin/sh.

No XMPP here: `run_job(job, engine, node, on_output, cancel)` takes a parsed job
(agent.protocol) and returns its JobResult, never raising for what the job itself does.
`on_output(text)`, when given, is called with each piece of a script's output as it comes
(what the agent streams as progress); setting the `cancel` event ends the job with status
"cancelled".

- A tasklet job runs `engine.execute(tags, params, node, timeout)` in a thread (the engine
  blocks; it kills each tasklet's process group at its timeout). The value is the list of
  per-tasklet results (`Result.as_dict()`); the status is "timed_out" if one timed out,
  "failed" if one failed or none has the tags, else "ok"; the output is theirs, joined.
- A script job runs `/bin/sh -c SCRIPT` in a new session with stdin from /dev/null,
  stdout and stderr captured together (keeping head and tail, bounded in memory). At the
  timeout its whole process group gets SIGKILL and the status is "timed_out"; otherwise
  "ok" for exit status 0 and "failed" for any other. When the shell ends, what it left
  running in its process group is killed too, so a job never outlives its result. A
  cancelled script is killed the same way.
- A cancelled tasklet job answers "cancelled" at once; the tasklet that runs then goes on
  in its worker until it ends or reaches its timeout (the engine cannot be interrupted).
"""

import asyncio
import codecs
import os
import signal
import subprocess
from collections.abc import Callable

from agent.protocol import MAX_OUTPUT, JobResult, ScriptJob, TaskletJob, clip_output

GRACE = 0.5  # seconds to drain output after the shell has exited
_CHUNK = 65536


async def run_job(job: TaskletJob | ScriptJob, engine, node: dict | None = None,
                  on_output: Callable[[str], None] | None = None,
                  cancel: asyncio.Event | None = None) -> JobResult:
    """Run `job` and return its result."""
    if isinstance(job, ScriptJob):
        return await run_script(job, on_output, cancel)
    return await run_tasklets(job, engine, node or {}, cancel)


async def run_tasklets(job: TaskletJob, engine, node: dict, cancel: asyncio.Event | None = None) -> JobResult:
    """Run the tasklets having all of the job's tags, in a thread."""
    work = asyncio.ensure_future(
        asyncio.to_thread(engine.execute, list(job.tags), job.params, node, job.timeout))
    stopper = asyncio.ensure_future(cancel.wait()) if cancel else None
    try:
        await asyncio.wait({f for f in (work, stopper) if f}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopper is not None:
            stopper.cancel()
    if not work.done():
        return JobResult(job.id, "cancelled", output="cancelled\n")
    results = work.result()
    if not results:
        return JobResult(job.id, "failed", output=f"no tasklet has all of the tags {', '.join(job.tags)}\n")
    statuses = {r.status for r in results}
    status = "timed_out" if "timed_out" in statuses else "failed" if "failed" in statuses else "ok"
    output = "".join(f"--- {r.name}: {r.status}\n{r.output}{_error(r.error)}" for r in results)
    return JobResult(job.id, status, value=[r.as_dict() for r in results], output=output)


def _error(error: str | None) -> str:
    return f"{error}\n" if error else ""


class Capture:
    """Keeps the first and last `limit` bytes of a stream and counts what it dropped."""

    def __init__(self, limit: int = MAX_OUTPUT):
        self.limit, self.head, self.tail, self.dropped = limit, bytearray(), bytearray(), 0

    def feed(self, data: bytes) -> None:
        room = self.limit - len(self.head)
        self.head += data[:room]
        self.tail += data[room:] if room > 0 else data
        if len(self.tail) > self.limit:
            self.dropped += len(self.tail) - self.limit
            del self.tail[:len(self.tail) - self.limit]

    def text(self) -> str:
        cut = f"\n[... {self.dropped} bytes cut ...]\n" if self.dropped else ""
        text = self.head.decode(errors="replace") + cut + self.tail.decode(errors="replace")
        return clip_output(text)


async def _drain(stream: asyncio.StreamReader, capture: Capture,
                 on_output: Callable[[str], None] | None) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while data := await stream.read(_CHUNK):
        capture.feed(data)
        if on_output is not None:
            on_output(decoder.decode(data))


async def run_script(job: ScriptJob, on_output: Callable[[str], None] | None = None,
                     cancel: asyncio.Event | None = None) -> JobResult:
    """Run the job's script with /bin/sh -c, killing its process group at the timeout."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", job.script, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True)
    capture = Capture()
    reader = asyncio.ensure_future(_drain(proc.stdout, capture, on_output))
    waiter = asyncio.ensure_future(proc.wait())
    stopper = asyncio.ensure_future(cancel.wait()) if cancel else None
    try:
        await asyncio.wait({f for f in (waiter, stopper) if f}, timeout=job.timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        ended, cancelled = waiter.done(), stopper is not None and stopper.done()
    finally:
        _kill_group(proc.pid)  # at the timeout, on cancellation, and whatever the script left running
        if stopper is not None:
            stopper.cancel()
    exit_status = await waiter
    await _finish(reader, GRACE)
    if not ended:
        if cancelled:
            return JobResult(job.id, "cancelled", output=capture.text() + "\ncancelled\n")
        return JobResult(job.id, "timed_out", output=capture.text() + f"\nkilled after {job.timeout:g} s\n")
    return JobResult(job.id, "ok" if exit_status == 0 else "failed", exit=exit_status,
                     output=capture.text())


async def _finish(reader: asyncio.Future, grace: float) -> None:
    try:
        await asyncio.wait_for(reader, grace)
    except TimeoutError:
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
