"""jobs.*: jobs for the agents and workflow runs, kept in OSIS, run by the workflow engine.

A job asked for here is stored QUEUED (a script's size counts up to 4 bytes a character
against the agent's 64 KiB); the engine (the jobs component) sends it when its
agent is online and records its result, exit status, output and log on the same object.
The agent is named by its JID, its Agent id, or its machine's host name or id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from appliance.api.dispatch import ApiError, exposed
from appliance.jobs import submit
from appliance.jobs.workflows import WORKFLOWS
from appliance.osis.schema import domain
from appliance.osis.store import ObjectStore
from appliance.services import Guid, Limit, int_in

State = Literal[tuple(domain.JobState._NAMES_TO_VALUES)]  # type: ignore[valid-type]
AgentRef = Annotated[str, StringConstraints(min_length=1, max_length=320)]
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)]
_XML_CHAR = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"  # what XML 1.0 can carry
_NOT_BLANK = r"[^\s\x00-\x1f\ufffe\uffff]"
Script = Annotated[str, StringConstraints(max_length=16384,
                                          pattern=rf"^{_XML_CHAR}*{_NOT_BLANK}{_XML_CHAR}*$")]
WorkflowName = Literal[tuple(WORKFLOWS)]  # type: ignore[valid-type]
Timeout = int_in(1, 86400)


class Jobs:
    name = "jobs"

    def __init__(self, store: Callable[[], ObjectStore]):
        self.store = store

    @exposed(http="GET /jobs")
    def list(self, state: State | None = None, agent: AgentRef | None = None, workflow: Guid | None = None,
             limit: Limit = 100) -> list[domain.Job]:
        """Jobs, newest first; filter by state, agent, or workflow run (its steps and itself)."""
        return submit.list_jobs(self.store(), state, agent, workflow, limit)

    @exposed(http="GET /jobs/{guid}")
    def get(self, guid: Guid) -> domain.Job:
        """One job: its state, result, exit status, output and log."""
        return self.store().get("job", guid)

    @exposed(http="POST /jobs", writes=True)
    def run(self, agent: AgentRef, tags: Annotated[list[Tag], Field(min_length=1, max_length=16)],
            params: dict[str, Any] | None = None, timeout: Timeout = 300) -> domain.Job:
        """Queue a job running the tasklets having all of `tags`, with `params`, on the agent."""
        try:
            return submit.run_tasklets(self.store(), agent, tags, params or {}, timeout)
        except submit.BadRequest as exc:
            raise ApiError("invalid_params", f"jobs.run: {exc}") from None

    @exposed(http="POST /jobs/script", writes=True)
    def script(self, agent: AgentRef, script: Script, timeout: Timeout = 300) -> domain.Job:
        """Queue a job running `script` with /bin/sh -c on the agent."""
        try:
            return submit.run_script(self.store(), agent, script, timeout)
        except submit.BadRequest as exc:
            raise ApiError("invalid_params", f"jobs.script: {exc}") from None

    @exposed(http="POST /workflows", writes=True)
    def workflow(self, name: WorkflowName, agent: AgentRef,
                 params: dict[str, Any] | None = None) -> domain.Job:
        """Start a workflow run (commission) for an agent's machine; its steps are jobs whose
        `workflow` is the run's id. An agent without a machine: 409."""
        try:
            return submit.start_workflow(self.store(), name, agent, params or {})
        except submit.NoMachine as exc:
            raise ApiError("conflict", f"jobs.workflow: {exc}") from None
        except submit.BadRequest as exc:
            raise ApiError("invalid_params", f"jobs.workflow: {exc}") from None

    @exposed(http="POST /jobs/{guid}/cancel", writes=True)
    def cancel(self, guid: Guid) -> domain.Job:
        """Cancel a job: at once if it waits in the queue, else its agent is asked to stop
        it. A finished job is returned as it is."""
        return submit.cancel(self.store(), guid)
