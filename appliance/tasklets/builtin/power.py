"""Power actions for virtual machines: on, off, reset and status, by QEMU's QMP or libvirt.

params:
  action    "on" | "off" | "reset" | "status"
  driver    "qemu" (default: QEMU's QMP socket) or "libvirt" (virsh)
  force     off: pull the plug (QEMU `quit`, `virsh destroy`) instead of pressing the
            ACPI power button (`system_powerdown`, `virsh shutdown`), which the guest
            may ignore
  wait      off without force: seconds to wait for the machine to be off (default 0:
            press the button and return)
  qemu:     socket   its QMP socket (`-qmp unix:PATH,server=on,wait=off`)
            command  on: the QEMU command line (a list) to start when nothing answers on
                     the socket; it runs in a session of its own, outliving the job
  libvirt:  domain   the domain's name or UUID
            uri      libvirt URI (`virsh --connect`); default: virsh's own

Returns {"driver", "action", "state": "on" | "off" | "paused", "detail" (QEMU's run
state or virsh's domstate), "changed" (whether it did anything)}, plus "pid" when it
started QEMU. For QEMU, "running" is on; "shutdown" (the guest is off, QEMU kept by
-no-shutdown) or nothing answering on the socket is off; anything else (prelaunch,
paused, …) is paused. On resumes a paused machine and restarts one that shut down. What
cannot be done raises PowerError with the reason, which the job's result carries.
"""

import subprocess
import time

import _qmp
import _virsh

NAME = "power"
TAGS = ("power",)
ACTIONS = ("on", "off", "reset", "status")
START_WAIT = 30.0  # seconds for a QEMU it started to open its QMP socket


class PowerError(Exception):
    """The action cannot be done; the message says why."""


def main(params, ctx):
    action, driver = params.get("action"), params.get("driver", "qemu")
    if action not in ACTIONS:
        raise ValueError(f'params: "action" must be one of {", ".join(ACTIONS)}, not {action!r}')
    if driver not in ("qemu", "libvirt"):
        raise ValueError(f'params: "driver" must be "qemu" or "libvirt", not {driver!r}')
    wait = params.get("wait", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < ctx.timeout:
        raise ValueError(f'params: "wait" must be seconds from 0 to less than the timeout ({ctx.timeout:g})')
    result = (_qemu if driver == "qemu" else _libvirt)(action, params, ctx, float(wait))
    ctx.log(f"power {action} ({driver}): {result['state']} ({result['detail']})")
    return {"driver": driver, "action": action, **result}


def _text(params, key, required=True):
    value = params.get(key)
    if (value is None and required) or (value is not None and (not isinstance(value, str) or not value)):
        raise ValueError(f'params: "{key}" must be a non-empty string')
    return value


# --- QEMU -----------------------------------------------------------------------------------


def _state(status):
    if status is None or status == "shutdown":
        return "off"
    return "on" if status == "running" else "paused"


def _status(sock):
    """QEMU's run state, None when nothing answers on the socket (or QEMU is ending)."""
    try:
        with _qmp.Qmp(sock) as qmp:
            return qmp.execute("query-status")["status"]
    except (FileNotFoundError, ConnectionError):  # refused, reset, closed
        return None
    except (OSError, _qmp.QmpError) as exc:
        raise PowerError(f"QMP socket {sock}: {exc}") from None


def _run(sock, *commands):
    try:
        with _qmp.Qmp(sock) as qmp:
            for command in commands:
                qmp.execute(command)
    except (OSError, _qmp.QmpError) as exc:
        raise PowerError(f"QMP socket {sock}: {exc}") from None


def _until(check, seconds, step=0.1):
    """Poll check() until it gives something true or `seconds` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(step)
    return value


def _qemu(action, params, ctx, wait):
    sock = _text(params, "socket")
    status = _status(sock)
    if action == "status":
        return {"state": _state(status), "detail": status or "no QEMU answers", "changed": False}
    if action == "reset":
        if status is None:
            raise PowerError(f"nothing answers on {sock}: the machine is off")
        _run(sock, "system_reset")
        return {"state": _state(status), "detail": status, "changed": True}
    if action == "on":
        return _qemu_on(sock, status, params, ctx)
    if status is None:
        return {"state": "off", "detail": "no QEMU answers", "changed": False}
    if params.get("force"):
        try:
            _run(sock, "quit")
        except PowerError:  # it may close the socket before it answers
            pass
        _until(lambda: _status(sock) is None, min(10.0, ctx.timeout / 2))
    else:
        _run(sock, "system_powerdown")
        _until(lambda: _state(_status(sock)) == "off", wait)
    status = _status(sock)
    return {"state": _state(status), "detail": status or "no QEMU answers", "changed": True}


def _qemu_on(sock, status, params, ctx):
    started = {}
    if status is None:
        command = params.get("command")
        if not command or not isinstance(command, list) or not all(isinstance(a, str) for a in command):
            raise PowerError(f'nothing answers on {sock}: give "command" (a list) to start QEMU')
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise PowerError(f"cannot start {command[0]}: {exc.strerror}") from None
        started = {"pid": proc.pid}
        status = _until(lambda: "exited" if proc.poll() is not None else _status(sock),
                        min(START_WAIT, ctx.timeout / 2))
        if not status or status == "exited":
            raise PowerError(f"QEMU (pid {proc.pid}, exit status {proc.poll()}) did not open {sock}")
    if status != "running":
        _run(sock, *(["system_reset"] if status == "shutdown" else []), "cont")
    now = _status(sock)
    return {"state": _state(now), "detail": now, "changed": bool(started) or status != "running", **started}


# --- libvirt --------------------------------------------------------------------------------


def _libvirt(action, params, ctx, wait):
    domain, uri = _text(params, "domain"), _text(params, "uri", required=False)
    limit = max(ctx.timeout / 2, 1.0)

    def virsh(what):
        try:
            return _virsh.run(_virsh.argv(what, domain, uri), limit)
        except _virsh.VirshError as exc:
            raise PowerError(str(exc)) from None

    detail = virsh("status")
    state = _virsh.STATES.get(detail, detail)
    if action == "status":
        return {"state": state, "detail": detail, "changed": False}
    if action == "reset":
        if state == "off":
            raise PowerError(f"domain {domain} is {detail}: there is nothing to reset")
        virsh("reset")
        return {"state": state, "detail": "reset", "changed": True}
    if action == "on":
        if state == "on":
            return {"state": "on", "detail": detail, "changed": False}
        virsh("resume" if state == "paused" else "on")
        return {"state": "on", "detail": "resumed" if state == "paused" else "started", "changed": True}
    if state == "off":
        return {"state": "off", "detail": detail, "changed": False}
    if params.get("force"):
        virsh("kill")
        return {"state": "off", "detail": "destroyed", "changed": True}
    virsh("off")
    off = _until(lambda: _virsh.STATES.get(virsh("status")) == "off", wait)
    detail = "shut off" if off else "shutdown requested"
    return {"state": "off" if detail == "shut off" else "on", "detail": detail, "changed": True}

