"""Run one command and return its exit status and output.

params: `command` (a list of arguments, or a string split like a shell would, but run
without a shell), `timeout` (seconds, default a second less than the tasklet's own), `cwd`.
Returns {"exit_status", "stdout", "stderr", "timed_out"}; exit_status is null when the
command was killed at its timeout, and -N when a signal N ended it.
"""

import shlex
import subprocess

NAME = "command"
TAGS = ("command",)


def main(params, ctx):
    command = params.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if not command or not all(isinstance(a, str) for a in command):
        raise ValueError('params: "command" must be a command line or a list of arguments')
    timeout = float(params.get("timeout", max(ctx.timeout - 1, 0.5)))
    ctx.log(f"command: {shlex.join(command)} (timeout {timeout:g} s)")
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              timeout=timeout, cwd=params.get("cwd"), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return {"exit_status": None, "stdout": _text(exc.stdout), "stderr": _text(exc.stderr),
                "timed_out": True}
    return {"exit_status": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "timed_out": False}


def _text(data):
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data or ""
