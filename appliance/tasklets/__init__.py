"""Tasklets: small Python files that the engine finds by tag and runs, each in its own process.

A tasklet file declares, at module level:

    NAME = "disk-check"          # optional, default the file's stem; letters, digits, _ . -
    TAGS = ("commission", "disk") # required: a non-empty list or tuple of strings
    PRIORITY = 30                 # optional int, default 50; lower runs first

    def match(params, ctx):       # optional: False skips this tasklet for these params
        return "disk" in params

    def main(params, ctx):        # required: does the work; returns a JSON-serializable value
        ctx.log("checking", params["disk"])
        return {"ok": True}

`ctx` (worker.Context) has `name`, `params`, `node` (facts about the machine, as the caller
passed them), `tags` (those asked for), `timeout` (seconds) and `log(*args)`, which writes a
line to the captured output. Module-level code runs when the engine loads the file and
again for every run, both times in a worker process: keep it to declarations.

`Engine.load(dirs)` loads the built-ins (`builtin/`: facts, ping, command) and then each
directory (see loader); a file that is not a tasklet becomes a `LoadError(file, reason)`
and the rest still load. `Engine.execute(tags, params, node, timeout)` returns one `Result`
per tasklet having all the tags, in priority order (see engine). Each run is a fresh
`python -I` process (see worker and process): params, node and the returned value cross
that boundary as JSON; stdout and stderr, of the tasklet and of any program it starts,
are captured; at the timeout the whole process group is killed with SIGKILL.
"""

from appliance.tasklets.engine import BUILTIN, STATUSES, Engine, Result
from appliance.tasklets.loader import LoadError, Tasklet

__all__ = ["BUILTIN", "STATUSES", "Engine", "LoadError", "Result", "Tasklet"]
