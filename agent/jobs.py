"""Running one job on this machine: tasklets through the engine, scripts through /bin/sh.

No XMPP here: `run_job(job, engine, node)` takes a parsed job (agent.protocol) and returns
its JobResult, never raising for what the job itself does.

- A tasklet job runs `engine.execute(tags, params, node, timeout)` in a thread (the engine
  blocks; it kills each tasklet's process group at its timeout). The value is the list of
  per-tasklet results (`Result.as_dict()`); the status is "timed_out" if one timed out,
  "failed" if one failed or none has the tags, else "ok"; the output is theirs, joined.
- A script job runs `/bin/sh -c SCRIPT` in a new session with stdin from /dev/null,
  stdout and stderr captured together (keeping head and tail, bounded in memory). At the
  timeout its whole process group gets SIGKILL and the status is "timed_out"; otherwise
  "ok" for exit status 0 and "failed" for any other. When the shell ends, what it left
  running in its process group is killed too, so a job never outlives its result.
"""

import asyncio
import os
import signal
import subprocess

from agent.protocol import MAX_OUTPUT, JobResult, ScriptJob, TaskletJob, clip_output

GRACE = 0.5  # seconds to drain output after the shell has exited
_CHUNK = 65536


async def run_job(job: TaskletJob | ScriptJob, engine, node: dict | None = None) -> JobResult:
    """Run `job` and return its result."""
    if isinstance(job, ScriptJob):
        return await run_script(job)
    return await run_tasklets(job, engine, node or {})


async def run_tasklets(job: TaskletJob, engine, node: dict) -> JobResult:
    """Run the tasklets having all of the job's tags, in a thread."""
    results = await asyncio.to_thread(engine.execute, list(job.tags), job.params, node, job.timeout)
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


async def _drain(stream: asyncio.StreamReader, capture: Capture) -> None:
    while data := await stream.read(_CHUNK):
        capture.feed(data)


async def run_script(job: ScriptJob) -> JobResult:
    """Run the job's script with /bin/sh -c, killing its process group at the timeout."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", job.script, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True)
    capture = Capture()
    reader = asyncio.ensure_future(_drain(proc.stdout, capture))
    try:
        exit_status = await asyncio.wait_for(proc.wait(), job.timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        await _finish(reader, GRACE)
        return JobResult(job.id, "timed_out", output=capture.text() + f"\nkilled after {job.timeout:g} s\n")
    finally:
        _kill_group(proc.pid)  # on cancellation, and whatever the script left running
    await _finish(reader, GRACE)
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
