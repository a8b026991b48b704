"""Finding tasklet files in directories and reading what each declares.

Each directory's `*.py` files are taken in name order; files whose names start with "_"
or "." are helpers, not tasklets. The files are imported in a worker process (never in
the engine's), which reports each one's NAME, TAGS, PRIORITY and whether it has a
`match`, or why it is not a tasklet. When a worker has not finished within `LOAD_TIMEOUT`
seconds, the file it was importing is reported as hanging and a new worker takes the
files after it; one that ends the process (os._exit, a crash) is reported the same way.

Names: within one directory a name must be unique (the second file is refused); a later
directory overrides an earlier one's tasklet of the same name, so that a site's directory
can replace a built-in. The replaced file is kept in `Tasklet.overrides`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from appliance.tasklets.process import run_worker

LOAD_TIMEOUT = 10.0


@dataclass(frozen=True)
class Tasklet:
    """One loaded tasklet file: what it declares (its code stays in its file)."""

    name: str
    tags: tuple[str, ...]
    priority: int
    file: str
    has_match: bool = False
    doc: str = ""
    overrides: str | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "tags": list(self.tags), "priority": self.priority, "file": self.file,
                "has_match": self.has_match, "doc": self.doc, "overrides": self.overrides}


@dataclass(frozen=True)
class LoadError:
    """A file (or directory) that was skipped, and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


def load(dirs: list[str | Path]) -> tuple[dict[str, Tasklet], list[LoadError]]:
    """Every tasklet in `dirs` by name (see the module docstring), and the files skipped."""
    tasklets: dict[str, Tasklet] = {}
    errors: list[LoadError] = []
    for folder in dirs:
        files, problem = _files(Path(folder))
        if problem:
            errors.append(problem)
            continue
        found, failed = _describe(files)
        errors += failed
        here: set[str] = set()
        for t in found:
            if t.name in here:
                first = next(f for f in files if tasklets[t.name].file == f)
                reason = f"NAME {t.name!r} is already used by {first} in this directory"
                errors.append(LoadError(t.file, reason))
                continue
            here.add(t.name)
            old = tasklets.get(t.name)
            tasklets[t.name] = Tasklet(**{**vars(t), "overrides": old.file if old else None})
    return tasklets, errors


def _files(folder: Path) -> tuple[list[str], LoadError | None]:
    if not folder.is_dir():
        return [], LoadError(str(folder), "is not a directory")
    try:
        names = sorted(p for p in folder.iterdir() if p.suffix == ".py" and p.name[0] not in "_.")
    except OSError as exc:
        return [], LoadError(str(folder), f"cannot be listed: {exc.strerror}")
    return [str(p.absolute()) for p in names if p.is_file()], None


def _describe(files: list[str]) -> tuple[list[Tasklet], list[LoadError]]:
    """Import `files` in workers; a worker that hangs or dies costs the file it was on."""
    found: list[Tasklet] = []
    errors: list[LoadError] = []
    while files:
        finished = run_worker({"mode": "load", "files": files}, LOAD_TIMEOUT)
        lines = [json.loads(line) for line in finished.answer.decode().split("\n")[:-1]]  # whole lines
        for line in lines:
            if "error" in line:
                errors.append(LoadError(line["file"], line["error"]))
            else:
                found.append(Tasklet(name=line["name"], tags=tuple(line["tags"]), priority=line["priority"],
                                     file=line["file"], has_match=line["has_match"], doc=line["doc"]))
        if len(lines) < len(files):
            errors.append(LoadError(files[len(lines)], _stopped(finished)))
        files = files[len(lines) + 1:]
    return found, errors


def _stopped(finished) -> str:
    if finished.timed_out:
        return f"importing it did not finish within {LOAD_TIMEOUT:g} s"
    last = finished.output.strip().splitlines()[-1:] or ["no output"]
    return f"importing it ended the process (exit status {finished.returncode}; {last[0]})"
