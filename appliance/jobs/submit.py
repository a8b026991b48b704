"""Making, finding and cancelling jobs in OSIS: what the jobs service, the CLI and the
engine share. Blocking (the store is synchronous): call it from a thread in asyncio code.

A new job is a QUEUED Job object; the engine of the appliance picks it up from the
store's change feed (whoever wrote it: the app server, `appliance jobs` in another
process, a workflow). Its agent is named by a bare JID, an Agent guid, or the host name or
guid of the agent's machine. A request that cannot become a job (no such agent, tags or
a script the agent would refuse) raises BadRequest and stores nothing.

Cancelling: a QUEUED job is CANCELLED at once (a compare-and-set on its revision, so it
cannot also be sent); a sent one gets `cancel_requested`, and the engine asks its agent
to stop it; a finished one is left as it is.
"""

import copy
import json
import time
import uuid

from agent.protocol import ProtocolError, job_element
from appliance.jobs import core
from appliance.jobs.workflows import WORKFLOWS
from appliance.osis.kv import NEW, Conflict
from appliance.osis.schema import GUID, domain
from appliance.osis.store import NotFound, ObjectStore, Stored

S = domain.JobState


class BadRequest(ValueError):
    """A job request that cannot be carried out; the message says why."""


class NoMachine(BadRequest):
    """A workflow that works on a machine, for an agent that has none."""


def find_agent(store: ObjectStore, ref: str) -> domain.Agent:
    """The Agent named by `ref` (JID, Agent guid, machine host name or guid); else NotFound."""
    ref = ref.strip()
    if "@" in ref:
        found = store.query("agent", [("jid", "=", ref.split("/")[0].lower())], limit=1)
        if found:
            return found[0].obj
    elif GUID.fullmatch(ref):
        try:
            return store.get("agent", ref).obj
        except NotFound:
            pass
        machines = store.query("machine", [("hostname", "=", ref.lower())], limit=1)
        machine = machines[0].obj.guid if machines else ref
        found = store.query("agent", [("machine", "=", machine)], limit=1)
        if found:
            return found[0].obj
    raise NotFound(f"no agent {ref!r} (give its JID, its id, or its machine's host name)")


def new_job(agent: domain.Agent, action: str, *, tags=(), params: dict | None = None, script: str = "",
            timeout: int = 300, workflow: str | None = None, step: str | None = None,
            guid: str | None = None, now: float | None = None) -> domain.Job:
    """A QUEUED job for `agent` (not stored); BadRequest if its agent would refuse it."""
    if not agent.jid:
        raise BadRequest(f"agent {agent.guid} has no JID")
    body = {"script": script} if action == "script" else dict(params or {})
    job = domain.Job(guid=guid or str(uuid.uuid4()), agent=agent.guid, jid=agent.jid.lower(), action=action,
                     params_json=json.dumps(body), tags=list(tags), timeout=int(timeout),
                     created=time.time() if now is None else now, workflow=workflow, step=step,
                     state=S.QUEUED)
    if action in core.AGENT_ACTIONS:
        try:
            job_element(core.wire_job(job))
        except (ProtocolError, ValueError) as exc:
            raise BadRequest(getattr(exc, "reason", str(exc))) from None
    return job


def run_tasklets(store: ObjectStore, agent: str, tags: list[str], params: dict | None = None,
                 timeout: int = 300) -> Stored:
    """Queue a job running the tasklets with all of `tags` on the agent."""
    if not tags:
        raise BadRequest("name at least one tag")
    job = new_job(find_agent(store, agent), "tasklet", tags=tags, params=params, timeout=timeout)
    return Stored(job, store.put(job, expect=NEW))


def run_script(store: ObjectStore, agent: str, script: str, timeout: int = 300) -> Stored:
    """Queue a job running `script` with /bin/sh on the agent."""
    job = new_job(find_agent(store, agent), "script", script=script, timeout=timeout)
    return Stored(job, store.put(job, expect=NEW))


def start_workflow(store: ObjectStore, name: str, agent: str, params: dict | None = None) -> Stored:
    """Queue a run of workflow `name` for the agent (and its machine)."""
    flow = WORKFLOWS.get(name)
    if flow is None:
        raise BadRequest(f"no workflow {name!r} (workflows: {', '.join(WORKFLOWS)})")
    target = find_agent(store, agent)
    if flow.needs_machine and not target.machine:
        raise NoMachine(f"{name} needs a machine, and agent {target.jid} has none")
    try:
        body = json.loads(json.dumps({**(params or {}), "machine": target.machine}, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"params are not JSON: {exc}") from None
    guid = str(uuid.uuid4())
    job = new_job(target, "workflow", tags=[name], params=body, workflow=guid, guid=guid)
    return Stored(job, store.put(job, expect=NEW))


def cancel(store: ObjectStore, guid: str) -> Stored:
    """Cancel job `guid` (see the module docstring); the job as it is now."""
    for _ in range(10):
        found = store.get("job", guid)
        job = copy.deepcopy(found.obj)
        if job.state in core.TERMINAL or job.cancel_requested:
            return found
        if job.state == S.QUEUED:
            core.apply(job, core.Plan({"state": S.CANCELLED, "finished": time.time(), "error": "cancelled"},
                                      ["cancelled before it was sent"]), time.time())
        else:
            job.cancel_requested = True
        try:
            return Stored(job, store.put(job, expect=found.revision))
        except Conflict:
            continue  # the engine wrote it meanwhile: look again
    raise Conflict(f"job {guid}".encode(), found.revision, 0)


def list_jobs(store: ObjectStore, state: str | None = None, agent: str | None = None,
              workflow: str | None = None, limit: int = 100):
    """Jobs, newest first, filtered by state name, agent (any way of naming it) or workflow."""
    where = []
    if state:
        where.append(("state", "=", state.upper()))
    if agent:
        where.append(("agent", "=", find_agent(store, agent).guid))
    if workflow:
        where.append(("workflow", "=", workflow))
    return store.query("job", where, order_by="created", descending=True, limit=limit)
