"""Workflows: ordered steps with conditions, advanced from the jobs of their steps. Pure.

A workflow run is a Job (action "workflow", `tags` = [its name], `workflow` = its own
guid); each step that started is a Job too, with `workflow` = the run's guid, `step` =
the step's name and guid `<run guid>.s<index>` — so a step is made at most once, however
often the engine restarts. `advance(workflow, ctx, steps)` looks at the step jobs so far
and says what comes next:

- a step whose job is not finished: wait (None);
- a finished step: it passed if its job SUCCEEDED (or was SKIPPED) and the step's `check`
  finds nothing wrong with its result; else the run fails, naming the step;
- the first step without a job: its `plan(ctx)` is its condition and what it runs — a
  `Run` (a tasklet or script job on the run's agent, or "local": something the engine
  does itself, the step's `local` function), `Skip(why)`, or `Fail(why)`;
- no step left: the run succeeded.

`ctx.results` holds the decoded result of every step that passed, by step name.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.osis.schema import domain

S = domain.JobState


@dataclass(frozen=True)
class Run:
    """What a step runs: a tasklet or script job on the agent, or a "local" step."""

    action: str
    tags: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    script: str = ""
    timeout: int = 300


@dataclass(frozen=True)
class Skip:
    why: str


@dataclass(frozen=True)
class Fail:
    why: str


@dataclass
class Context:
    """What a step's condition sees: the run's machine, agent, params, and results so far."""

    agent: str
    machine: str | None
    params: dict
    results: dict[str, Any] = field(default_factory=dict)


def passed(ctx: Context, value: Any) -> str | None:
    """The default check: a step passed when its job succeeded."""
    return None


@dataclass(frozen=True)
class Step:
    name: str
    plan: Callable[[Context], Run | Skip | Fail]
    check: Callable[[Context, Any], str | None] = passed
    local: Callable[[Any, Context], str] | None = None  # (store, ctx) -> output, for "local" runs


@dataclass(frozen=True)
class Workflow:
    name: str
    doc: str
    steps: tuple[Step, ...]
    needs_machine: bool = True
    on_start: Callable[[Any, Context], None] | None = None  # (store, ctx)
    on_end: Callable[[Any, Context, int, str | None], None] | None = None  # (store, ctx, state, error)


@dataclass(frozen=True)
class Start:
    """Make the job of step `index` (what `run` says), or, for a Skip, a SKIPPED one."""

    index: int
    step: Step
    run: Run | Skip


@dataclass(frozen=True)
class Finish:
    state: int
    error: str | None = None


def step_guid(run_guid: str, index: int) -> str:
    return f"{run_guid}.s{index}"


def step_index(run_guid: str, guid: str) -> int | None:
    prefix = f"{run_guid}.s"
    tail = guid[len(prefix):] if guid.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def advance(flow: Workflow, ctx: Context, steps: dict[int, Any]) -> Start | Finish | None:
    """What comes next in the run (see the module docstring); fills ctx.results."""
    for index, step in enumerate(flow.steps):
        job = steps.get(index)
        if job is None:
            decision = step.plan(ctx)
            if isinstance(decision, Fail):
                return Finish(S.FAILED, f"{step.name}: {decision.why}")
            return Start(index, step, decision)
        if job.state not in (S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.SKIPPED):
            return None
        if job.state == S.SKIPPED:
            continue
        if job.state != S.SUCCEEDED:
            state = S.CANCELLED if job.state == S.CANCELLED else S.FAILED
            return Finish(state, f"{step.name}: {S._VALUES_TO_NAMES[job.state].lower()}"
                          + (f" ({job.error})" if job.error else ""))
        value = _decode(job.result_json)
        problem = step.check(ctx, value)
        if problem:
            return Finish(S.FAILED, f"{step.name}: {problem}")
        ctx.results[step.name] = value
    return Finish(S.SUCCEEDED)


def _decode(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
