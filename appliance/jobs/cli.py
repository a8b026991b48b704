"""`appliance jobs …`: queue jobs for agents, follow them, cancel them — in OSIS directly.

    appliance jobs run ping --agent node-1a2b3c --wait
    appliance jobs run command --agent node1@rack.internal --param 'command=["uptime"]' --wait
    appliance jobs script 'df -h /' --agent node-1a2b3c --timeout 30 --wait
    appliance jobs workflow commission --agent node-1a2b3c --param min_disk_bytes=1e10
    appliance jobs list [--state RUNNING] [--agent A] [--workflow RUN] [--limit N] [--json]
    appliance jobs show JOB [--json]
    appliance jobs cancel JOB

Like `appliance osis`, it opens the object store the config names; the workflow engine of
the running appliance (the jobs component) sees a new job there within a moment and
sends it when its agent is online. `run`'s TAGS pick the tasklets (every one having all
of them; a tasklet's name is usually one of its tags). `--wait` follows the job until it
ends and exits 0 if it succeeded, 1 if not; without it, the job's id is printed. A bad
request (no such agent, a tag or script the agent would refuse) exits 2 and queues nothing.
"""

import argparse
import json
import sys
import time

from appliance.jobs import core, submit
from appliance.osis.commands import open_configured
from appliance.osis.schema import as_dict, domain
from appliance.tasklets.commands import param_arg, tags_arg

EXIT_FAILED, EXIT_USAGE = 1, 2
POLL = 0.2  # seconds between two looks at a job being waited for


def add_commands(sub, config_option) -> None:
    """Add `jobs` and its actions to the `appliance` command's subparsers."""
    jobs = sub.add_parser("jobs", help="run jobs on agents, list, show and cancel them")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="queue a job running the tasklets having all TAGS on an agent")
    run.add_argument("tags", type=_tags, metavar="TAGS", help="comma-separated tags, e.g. ping or facts")
    run.add_argument("--param", action="append", default=[], type=param_arg, metavar="KEY=VALUE",
                     help="a parameter; VALUE is read as JSON when it is JSON, else as a string (repeatable)")
    script = actions.add_parser("script", help="queue a job running a shell script on an agent")
    script.add_argument("script", help="the script, run with /bin/sh -c")
    flow = actions.add_parser("workflow", help="start a workflow run (commission) for an agent's machine")
    flow.add_argument("name", help="the workflow: commission")
    flow.add_argument("--param", action="append", default=[], type=param_arg, metavar="KEY=VALUE",
                      help="a parameter of the workflow (repeatable)")
    for parser in (run, script, flow):
        parser.add_argument("--agent", required=True, help="its JID, its id, or its machine's host name")
        parser.add_argument("--wait", action="store_true",
                            help="follow it until it ends; exit 1 unless it succeeded")
        parser.add_argument("--wait-timeout", type=float, metavar="S", help="stop waiting after S seconds")
    for parser in (run, script):
        parser.add_argument("--timeout", type=int, default=300, metavar="S",
                            help="seconds it may run on the agent (default 300)")
    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--state", choices=sorted(domain.JobState._NAMES_TO_VALUES), type=str.upper)
    listing.add_argument("--agent", help="only this agent's (JID, id or host name)")
    listing.add_argument("--workflow", metavar="RUN", help="only this workflow run's (its id)")
    listing.add_argument("--limit", type=int, default=50, metavar="N")
    show = actions.add_parser("show", help="one job: state, result, output and log")
    show.add_argument("id")
    cancel = actions.add_parser("cancel", help="cancel a job (a running one: its agent is asked to stop it)")
    cancel.add_argument("id")
    for parser, func in ((run, cmd_run), (script, cmd_script), (flow, cmd_workflow), (listing, cmd_list),
                         (show, cmd_show), (cancel, cmd_cancel)):
        config_option(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=func)


def _tags(text: str) -> list[str]:
    tags = tags_arg(text)
    if not tags:
        raise argparse.ArgumentTypeError(f"{text!r} names no tag")
    return tags


def _submit(args, make) -> int:
    store = open_configured(args)
    try:
        try:
            stored = make(store)
        except submit.BadRequest as exc:
            print(f"appliance: jobs {args.action}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not args.wait:
            _print(args, stored, brief=True)
            return 0
        return _wait(args, store, stored)
    finally:
        store.close()


def cmd_run(args) -> int:
    return _submit(args, lambda store: submit.run_tasklets(store, args.agent, args.tags, dict(args.param),
                                                           args.timeout))


def cmd_script(args) -> int:
    return _submit(args, lambda store: submit.run_script(store, args.agent, args.script, args.timeout))


def cmd_workflow(args) -> int:
    return _submit(args, lambda store: submit.start_workflow(store, args.name, args.agent, dict(args.param)))


def _wait(args, store, stored) -> int:
    deadline = None if args.wait_timeout is None else time.monotonic() + args.wait_timeout
    while stored.obj.state not in core.TERMINAL:
        if deadline is not None and time.monotonic() > deadline:
            state = core.name(stored.obj.state)
            print(f"appliance: jobs: {stored.obj.guid} is still {state}", file=sys.stderr)
            _print(args, stored)
            return EXIT_FAILED
        time.sleep(POLL)
        stored = store.get("job", stored.obj.guid)
    _print(args, stored)
    return 0 if stored.obj.state == domain.JobState.SUCCEEDED else EXIT_FAILED


def cmd_list(args) -> int:
    store = open_configured(args)
    try:
        found = submit.list_jobs(store, args.state, args.agent, args.workflow, args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps([{**as_dict(s.obj), "_revision": s.revision} for s in found], indent=2))
        return 0
    rows = [[s.obj.guid, core.name(s.obj.state), _what(s.obj), s.obj.jid or "-", _when(s.obj.created),
             s.obj.step or ("run" if s.obj.action == "workflow" else "-")] for s in found]
    _table(["id", "state", "what", "agent", "created", "step"], rows)
    return 0


def cmd_show(args) -> int:
    store = open_configured(args)
    try:
        _print(args, store.get("job", args.id))
    finally:
        store.close()
    return 0


def cmd_cancel(args) -> int:
    store = open_configured(args)
    try:
        stored = submit.cancel(store, args.id)
    finally:
        store.close()
    _print(args, stored, brief=True)
    return 0


def _what(job) -> str:
    if job.action == "script":
        script = json.loads(job.params_json or "{}").get("script", "")
        first = script.strip().splitlines()[0] if script.strip() else ""
        return f"script: {first[:40]}"
    if job.action == "workflow":
        return f"workflow {','.join(job.tags or [])}"
    return f"{job.action} {','.join(job.tags or [])}".strip()


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)) if stamp else "-"


def _print(args, stored, brief: bool = False) -> None:
    job = stored.obj
    if args.json:
        print(json.dumps({**as_dict(job), "_revision": stored.revision}, indent=2))
        return
    extra = "" if job.cancel_requested is False or job.state in core.TERMINAL else " (cancel requested)"
    print(f"{job.guid}  {core.name(job.state)}{extra}  {_what(job)}  on {job.jid}")
    if brief:
        return
    for label, value in (("created", _when(job.created)), ("started", _when(job.started)),
                         ("finished", _when(job.finished)), ("runs", job.attempts),
                         ("exit status", job.exit_status), ("error", job.error), ("workflow", job.workflow),
                         ("result", job.result_json)):
        if value not in (None, "-", ""):
            print(f"{label}: {value}")
    for label, text in (("output", job.output), ("log", job.log)):
        if text:
            print(f"--- {label} ---\n{text.rstrip()}")


def _table(cols: list[str], rows: list[list]) -> None:
    if not rows:
        print("no jobs")
        return
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    for line in [cols, *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
