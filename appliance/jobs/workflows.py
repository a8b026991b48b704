"""The built-in workflows (see appliance.jobs.flow for how a workflow runs).

commission — make an enrolled machine ready for use, on its agent:

1. facts: the `facts` tasklet on the machine (params `sys`, `proc` pass through, for tests);
   it must return facts;
2. inventory (local): the machine's CPUs, memory and disks in OSIS become what it reported;
3. disk-check: only if the facts list a disk, and one of at least `min_disk_bytes`
   (param, default 0) — else the run fails; a script on the machine checks that every
   disk is still there (`/sys/block/NAME`), has a capacity and is not read-only;
4. ready (local): the machine's state becomes READY, with an Event machine.commissioned.

While it runs the machine is COMMISSIONING; a failed or timed-out run leaves it BROKEN
(an Event machine.commission_failed says why), a cancelled one ENROLLED again.
"""

import re
import shlex
import time
import uuid

from appliance.jobs.flow import Context, Fail, Run, Step, Workflow
from appliance.osis.kv import Conflict
from appliance.osis.schema import domain

M = domain.MachineState
_DISK = re.compile(r"[A-Za-z0-9._-]{1,64}")

DISK_SCRIPT = """\
status=0
for d in {disks}; do
  b={sys}/block/$d
  if [ ! -r "$b/size" ]; then echo "$d: missing"; status=1; continue; fi
  sectors=$(cat "$b/size"); ro=$(cat "$b/ro" 2>/dev/null || echo 0)
  echo "$d: $((sectors * 512)) bytes, read-only=$ro"
  [ "$sectors" -gt 0 ] || {{ echo "$d: no capacity"; status=1; }}
  [ "$ro" = 0 ] || {{ echo "$d: read-only"; status=1; }}
done
exit $status
"""


def facts_of(ctx: Context) -> dict | None:
    """The facts the facts step returned."""
    for item in ctx.results.get("facts") or ():
        if isinstance(item, dict) and item.get("name") == "facts" and isinstance(item.get("value"), dict):
            return item["value"]
    return None


def _facts_plan(ctx: Context) -> Run:
    params = {k: ctx.params[k] for k in ("sys", "proc") if k in ctx.params}
    return Run("tasklet", ("facts",), params, timeout=120)


def _facts_check(ctx: Context, value) -> str | None:
    ctx.results["facts"] = value
    return None if facts_of(ctx) is not None else "the facts tasklet returned no facts"


def _disks(ctx: Context) -> list[dict]:
    disks = (facts_of(ctx) or {}).get("disks") or []
    return [d for d in disks if isinstance(d, dict) and _DISK.fullmatch(str(d.get("name", "")))]


def _disk_plan(ctx: Context) -> Run | Fail:
    disks = _disks(ctx)
    if not disks:
        return Fail("the machine reported no disk")
    need = int(ctx.params.get("min_disk_bytes") or 0)
    if need and not any((d.get("size_bytes") or 0) >= need for d in disks):
        return Fail(f"no disk of at least {need} bytes")
    script = DISK_SCRIPT.format(disks=" ".join(d["name"] for d in disks),
                                sys=shlex.quote(str(ctx.params.get("sys", "/sys"))))
    return Run("script", script=script, timeout=60)


def _change_machine(store, guid: str, change) -> object:
    for _ in range(5):
        found = store.get("machine", guid)
        machine = found.obj
        change(machine)
        machine.updated = time.time()
        try:
            store.put(machine, expect=found.revision)
            return machine
        except Conflict:
            continue
    raise Conflict(f"machine {guid}".encode(), 0, 0)


def _event(store, machine, kind: str, message: str) -> None:
    store.put(domain.Event(guid=str(uuid.uuid4()), timestamp=time.time(), kind=kind, machine=machine.guid,
                           message=message))


def _inventory(store, ctx: Context) -> str:
    facts = facts_of(ctx) or {}

    def change(machine):
        if isinstance(facts.get("cpus"), int) and facts["cpus"] > 0:
            machine.cpus = facts["cpus"]
        if isinstance(facts.get("memory_mb"), int) and facts["memory_mb"] > 0:
            machine.memory_mb = facts["memory_mb"]
        machine.cpu_model = facts.get("cpu_model") or machine.cpu_model
        machine.disks = [domain.Disk(name=d["name"], size_bytes=d.get("size_bytes") or 0,
                                     serial=d.get("serial"), model=d.get("model"),
                                     rotational=d.get("rotational")) for d in _disks(ctx)]

    machine = _change_machine(store, ctx.machine, change)
    disks = ", ".join(f"{d.name} ({d.size_bytes} bytes)" for d in machine.disks) or "none"
    return f"{machine.hostname}: {machine.cpus} CPUs, {machine.memory_mb} MiB, disks: {disks}\n"


def _ready(store, ctx: Context) -> str:
    machine = _change_machine(store, ctx.machine, lambda m: setattr(m, "state", M.READY))
    _event(store, machine, "machine.commissioned", f"{machine.hostname} is ready")
    return f"{machine.hostname} is READY\n"


def _start(store, ctx: Context) -> None:
    _change_machine(store, ctx.machine, lambda m: setattr(m, "state", M.COMMISSIONING))


def _end(store, ctx: Context, state: int, error: str | None) -> None:
    if state == domain.JobState.SUCCEEDED:
        return
    to = M.ENROLLED if state == domain.JobState.CANCELLED else M.BROKEN
    machine = _change_machine(store, ctx.machine, lambda m: setattr(m, "state", to))
    _event(store, machine, "machine.commission_failed", f"{machine.hostname}: {error or 'cancelled'}")


COMMISSION = Workflow(
    "commission", "facts -> inventory -> disk check -> machine READY",
    (Step("facts", _facts_plan, _facts_check),
     Step("inventory", lambda ctx: Run("local"), local=_inventory),
     Step("disk-check", _disk_plan),
     Step("ready", lambda ctx: Run("local"), local=_ready)),
    on_start=_start, on_end=_end)

WORKFLOWS = {w.name: w for w in (COMMISSION,)}
