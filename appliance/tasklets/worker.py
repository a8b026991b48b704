"""The child side of the tasklet engine: imports tasklet files and runs one tasklet.

Run as a script by its path (`python -I -u worker.py`), never imported by the engine, so
that it needs nothing but the standard library and tasklet code never enters the engine's
process. The request is one JSON document on stdin. Answers go to the process's original
stdout, which the worker keeps for itself; fds 1 and 2 are both pointed at the original
stderr, so everything the tasklet (or a program it starts) prints is the captured output.

    {"mode": "load", "files": [PATH, ...]}
        one JSON line per file, in order: {"file", "name", "tags", "priority", "has_match",
        "doc"} or {"file", "error"}
    {"mode": "run", "file", "name", "params", "node", "tags", "timeout"}
        one JSON document: {"status": "ok"|"failed"|"skipped", "value", "error"}
"""

import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
from pathlib import Path

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
DEFAULT_PRIORITY = 50


class TaskletError(Exception):
    """The file is not a usable tasklet; the message says why."""


class Context:
    """What a tasklet's `main(params, ctx)` and `match(params, ctx)` receive."""

    def __init__(self, name: str, params: dict, node: dict, tags: list, timeout: float):
        self.name = name
        """This tasklet's NAME."""
        self.params = params
        """The parameters of this execution (the same dict as the `params` argument)."""
        self.node = node
        """Facts about the machine the engine runs for, as the caller passed them."""
        self.tags = tags
        """The tags this execution was asked for."""
        self.timeout = timeout
        """Seconds this tasklet may run in all before it is killed."""

    def log(self, *args) -> None:
        """Write one line to the captured output (like print, flushed at once)."""
        print(*args, file=sys.stderr, flush=True)


def import_file(path: str, module_name: str, keep_path: bool = False):
    """Execute the file as a module of its own; TaskletError when it fails.

    Its directory is on sys.path while it is imported (and, with `keep_path`, after), so
    that it can import helper modules kept beside it (files whose names start with "_").
    """
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskletError("cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(Path(path).parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise TaskletError(f"syntax error at line {exc.lineno}: {exc.msg}") from None
    except BaseException as exc:  # SystemExit at import is a broken file too
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        where = f" at line {lines[-1]}" if lines else ""
        raise TaskletError(f"importing it raised {type(exc).__name__}: {exc}{where}") from None
    finally:
        if not keep_path and folder in sys.path:
            sys.path.remove(folder)
    return module


def describe(path: str, module) -> dict:
    """The tasklet's declarations, checked; TaskletError naming the first wrong one."""
    name = getattr(module, "NAME", Path(path).stem)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise TaskletError(f"NAME {name!r} is not a name (letters, digits, '_', '.', '-')")
    if not hasattr(module, "TAGS"):
        raise TaskletError("TAGS is missing (a list of strings)")
    tags = module.TAGS
    if not isinstance(tags, (list, tuple)) or not tags or not all(isinstance(t, str) and t for t in tags):
        raise TaskletError(f"TAGS {tags!r} is not a non-empty list of strings")
    priority = getattr(module, "PRIORITY", DEFAULT_PRIORITY)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TaskletError(f"PRIORITY {priority!r} is not a whole number")
    _check_callable(module, "main", required=True)
    _check_callable(module, "match", required=False)
    doc = (module.__doc__ or "").strip().splitlines()
    return {"file": path, "name": name, "tags": list(tags), "priority": priority,
            "has_match": hasattr(module, "match"), "doc": doc[0] if doc else ""}


def _check_callable(module, attr: str, required: bool) -> None:
    if not hasattr(module, attr):
        if required:
            raise TaskletError(f"{attr}(params, ctx) is missing")
        return
    func = getattr(module, attr)
    if not callable(func):
        raise TaskletError(f"{attr} is not a function")
    try:
        inspect.signature(func).bind(None, None)
    except TypeError:
        raise TaskletError(f"{attr} does not take (params, ctx)") from None
    except ValueError:
        pass  # no signature to read (a builtin): let the call decide


def load(files: list[str], answer) -> None:
    for i, path in enumerate(files):
        try:
            line = describe(path, import_file(path, f"tasklet_{i}_{Path(path).stem}"))
        except TaskletError as exc:
            line = {"file": path, "error": str(exc)}
        answer.write(json.dumps(line) + "\n")
        answer.flush()


def run(req: dict) -> dict:
    try:
        module = import_file(req["file"], f"tasklet_{Path(req['file']).stem}", keep_path=True)
        describe(req["file"], module)
    except TaskletError as exc:
        return {"status": "failed", "value": None, "error": f"{req['file']}: {exc}"}
    params = req["params"]
    ctx = Context(req["name"], params, req["node"], req["tags"], req["timeout"])
    try:
        if hasattr(module, "match") and not module.match(params, ctx):
            return {"status": "skipped", "value": None, "error": None}
        value = module.main(params, ctx)
    except BaseException as exc:  # SystemExit in a tasklet is a failure too
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
        return {"status": "failed", "value": None, "error": tb}
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        error = f"main() returned a value that is not JSON-serializable: {exc}"
        return {"status": "failed", "value": None, "error": error}
    return {"status": "ok", "value": value, "error": None}


def main() -> None:
    answer = os.fdopen(os.dup(1), "w")  # not inherited: programs the tasklet starts cannot write to it
    os.dup2(2, 1)
    request = json.load(sys.stdin)
    sys.stdin = open(os.devnull)
    os.dup2(sys.stdin.fileno(), 0)
    if request["mode"] == "load":
        load(request["files"], answer)
    else:
        answer.write(json.dumps(run(request)))
    answer.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no atexit handlers or threads of the tasklet keep the process alive


if __name__ == "__main__":
    main()
