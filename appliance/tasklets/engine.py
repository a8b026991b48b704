"""The tasklet engine: loaded tasklets indexed by tag, and `execute` to run the ones that match.

`execute(tags, params)` selects the tasklets whose TAGS contain every requested tag, and
runs them one after the other in priority order (lower first, then by name), each in its
own worker process with a timeout. Each gives one `Result`; a tasklet that fails, hangs or
says no in `match` never stops the ones after it.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from appliance.tasklets.loader import LoadError, Tasklet, load
from appliance.tasklets.process import Finished, run_worker

BUILTIN = Path(__file__).with_name("builtin")
STATUSES = ("ok", "failed", "timed_out", "skipped")


@dataclass(frozen=True)
class Result:
    """What running one tasklet gave.

    `status` is "ok" (main returned `value`), "failed" (it raised, or its process died:
    `error` has the traceback or the reason), "timed_out" (killed after the timeout) or
    "skipped" (its match() said no). `output` is what it printed, stdout and stderr
    together; `duration` is seconds of wall time, process start-up included.
    """

    name: str
    status: str
    value: object = None
    output: str = ""
    error: str | None = None
    duration: float = 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "value": self.value, "output": self.output,
                "error": self.error, "duration": round(self.duration, 3)}


class Engine:
    """Tasklets by name, indexed by tag; the files that could not be loaded in `errors`."""

    def __init__(self, tasklets: dict[str, Tasklet], errors: list[LoadError] = (), timeout: float = 60):
        self.tasklets = dict(tasklets)
        self.errors = list(errors)
        self.timeout = timeout
        self.by_tag: dict[str, set[str]] = defaultdict(set)
        for t in self.tasklets.values():
            for tag in t.tags:
                self.by_tag[tag].add(t.name)

    @classmethod
    def load(cls, dirs: list[str | Path], *, builtin: bool = True, timeout: float = 60) -> "Engine":
        """Load the built-in tasklets (unless `builtin` is false), then `dirs` in order."""
        return cls(*load(([BUILTIN] if builtin else []) + list(dirs)), timeout=timeout)

    @classmethod
    def from_config(cls, cfg) -> "Engine":
        """The engine that a `[tasklets]` table describes."""
        return cls.load(list(cfg.paths), builtin=cfg.builtin, timeout=cfg.timeout)

    def select(self, tags: list[str]) -> list[Tasklet]:
        """The tasklets having every one of `tags` (all of them for no tags), in run order."""
        names = set(self.tasklets)
        for tag in tags:
            names &= self.by_tag.get(tag, set())
        return sorted((self.tasklets[n] for n in names), key=lambda t: (t.priority, t.name))

    def execute(self, tags: list[str], params: dict | None = None, node: dict | None = None,
                timeout: float | None = None) -> list[Result]:
        """Run every tasklet with all of `tags` (at least one) whose match() agrees, in order.

        `params` and `node` cross into the worker process as JSON, and so does each value
        a tasklet returns: they must be JSON-serializable (ValueError here if they are not).
        """
        if not tags:
            raise ValueError("name at least one tag")
        params, node = params or {}, node or {}
        try:
            json.dumps([params, node])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params and node must be JSON-serializable: {exc}") from None
        limit = timeout or self.timeout
        return [self._run(t, list(tags), params, node, limit) for t in self.select(tags)]

    def _run(self, t: Tasklet, tags: list[str], params: dict, node: dict, timeout: float) -> Result:
        request = {"mode": "run", "file": t.file, "name": t.name, "params": params, "node": node,
                   "tags": tags, "timeout": timeout}
        finished = run_worker(request, timeout)
        outcome = _outcome(finished, timeout)
        return Result(t.name, output=finished.output, duration=finished.duration, **outcome)


def _outcome(finished: Finished, timeout: float) -> dict:
    if finished.timed_out:
        return {"status": "timed_out", "error": f"killed after {timeout:g} s"}
    try:
        answer = json.loads(finished.answer)
    except ValueError:
        return {"status": "failed",
                "error": f"its process ended (exit status {finished.returncode}) without a result"}
    return {"status": answer["status"], "value": answer["value"], "error": answer["error"]}
