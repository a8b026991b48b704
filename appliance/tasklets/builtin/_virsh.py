"""virsh for the power tasklet: the command line of each action, run bounded in time.

`argv(action, domain, uri, force)` is pure (the tests check it as a table). `run`
raises VirshError with what virsh printed on stderr, and says what is missing when virsh
is not installed or cannot reach libvirtd.
"""

import shutil
import subprocess

ACTIONS = {"on": "start", "resume": "resume", "off": "shutdown", "kill": "destroy",
           "reset": "reset", "status": "domstate"}
STATES = {"running": "on", "idle": "on", "in shutdown": "on", "blocked": "on", "shut off": "off",
          "crashed": "off", "paused": "paused", "pmsuspended": "paused"}


class VirshError(Exception):
    """virsh is missing or failed; the message says which and why."""


def argv(action: str, domain: str, uri: str | None = None) -> list[str]:
    """virsh's arguments for one of ACTIONS on `domain` (by name or UUID)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown virsh action {action!r}")
    connect = ["--connect", uri] if uri else []
    return ["virsh", "--quiet", *connect, ACTIONS[action], "--domain", domain]


def run(args: list[str], timeout: float) -> str:
    """Run virsh with `args` (argv()); its output, or VirshError."""
    virsh = shutil.which(args[0])
    if virsh is None:
        raise VirshError("virsh is not installed (Debian package libvirt-clients)")
    try:
        done = subprocess.run([virsh, *args[1:]], capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise VirshError(f"{' '.join(args)}: no answer within {timeout:g} s") from None
    if done.returncode != 0:
        error = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        hint = (" (is libvirtd running, and is the URI right?)"
                if "failed to connect to the hypervisor" in error else "")
        raise VirshError(f"{' '.join(args)}: {error}{hint}")
    return done.stdout.strip()
