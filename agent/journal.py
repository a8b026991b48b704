"""What the agent ran lately, by job id: so that a job sent twice never runs twice.

The controller may send the same job again — after its own restart, after the agent was
offline, after an answer was lost. The agent looks the id up here first: a job that
finished is answered with its recorded result, one that runs is joined (agent.client),
only an unknown id runs. Records are kept `keep` seconds after the job finished and at
most `limit` of them (oldest dropped first).

With a `directory`, each record is also a file `<id>.json` there (written to a temporary
name, then renamed: never torn), read back when the agent starts. A job that was running
when the agent stopped has no result; it is answered as failed ("interrupted") rather
than run again, since it may have done part of its work. Without a directory the records
live only as long as the agent process.

No asyncio and no XMPP here; the clock is passed in.
"""

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.protocol import JobResult, is_job_id

log = logging.getLogger(__name__)

KEEP = 86400.0  # seconds a finished job's result is kept
LIMIT = 1000  # records at most
INTERRUPTED = "interrupted: the agent stopped while this job ran; it was not run again\n"


@dataclass
class Record:
    """One job: `result` is None while it runs (or if the agent stopped while it ran)."""

    id: str
    started: float
    finished: float | None = None
    result: JobResult | None = None


class Journal:
    """Records of recent jobs by id; see the module docstring."""

    def __init__(self, directory: str | Path | None = None, *, keep: float = KEEP, limit: int = LIMIT,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(directory) if directory else None
        self.keep, self.limit, self.clock = keep, limit, clock
        self._records: dict[str, Record] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._load()

    def __len__(self) -> int:
        return len(self._records)

    def result(self, job_id: str) -> JobResult | None:
        """The result of job `job_id` if it ran here (failed "interrupted" if it never ended)."""
        record = self._records.get(job_id)
        if record is None:
            return None
        if record.result is None:
            return JobResult(job_id, "failed", output=INTERRUPTED)
        return record.result

    def begin(self, job_id: str) -> None:
        """Job `job_id` starts running now."""
        self._prune()
        self._records[job_id] = record = Record(job_id, self.clock())
        self._write(record)

    def done(self, job_id: str, result: JobResult) -> None:
        """Job `job_id` ended with `result`."""
        record = self._records.setdefault(job_id, Record(job_id, self.clock()))
        record.finished, record.result = self.clock(), result
        self._write(record)

    def _prune(self) -> None:
        now = self.clock()
        old = [r.id for r in self._records.values()
               if r.finished is not None and now - r.finished > self.keep]
        excess = len(self._records) - len(old) - self.limit + 1
        if excess > 0:
            rest = sorted((r for r in self._records.values() if r.id not in old), key=lambda r: r.started)
            old += [r.id for r in rest[:excess]]
        for job_id in old:
            del self._records[job_id]
            if self.directory is not None:
                (self.directory / f"{job_id}.json").unlink(missing_ok=True)

    def _write(self, record: Record) -> None:
        if self.directory is None:
            return
        data = {"id": record.id, "started": record.started, "finished": record.finished,
                "result": asdict(record.result) if record.result else None}
        path = self.directory / f"{record.id}.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except OSError as exc:  # a full disk must not stop the job; only the record is lost
            log.warning("journal: cannot write %s: %s", path, exc)

    def _load(self) -> None:
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = _record(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("journal: ignoring %s: %s", path, exc)
                continue
            self._records[record.id] = record
        self._prune()


def _record(data: dict) -> Record:
    if not is_job_id(data.get("id")):
        raise ValueError("no valid id")
    result = data.get("result")
    return Record(data["id"], float(data["started"]),
                  None if data.get("finished") is None else float(data["finished"]),
                  JobResult(**result) if result else None)
