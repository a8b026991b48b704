"""`appliance tasklets list|run`: the tasklets the config loads, and running them by tag.

    appliance tasklets list -c appliance.toml --tags facts --json
    appliance tasklets run command --param command='["uname", "-a"]' --timeout 10

`list` prints each tasklet (name, tags, priority, file) and then every file that could not
be loaded; it exits 1 when there is one. `run` prints each result and exits 1 when a
tasklet failed or timed out, or when no tasklet has the tags.
"""

import argparse
import json
import sys

from appliance.tasklets.engine import Engine, Result


def add_commands(sub, config_option) -> None:
    tasklets = sub.add_parser("tasklets", help="list the tasklets and run them by tag")
    actions = tasklets.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the tasklets loaded, and the files that could not be")
    listing.add_argument("--tags", type=tags_arg, default=[], metavar="A,B",
                         help="only those with all these tags")
    listing.set_defaults(func=cmd_list)
    run = actions.add_parser("run", help="run every tasklet having all TAGS, in priority order")
    run.add_argument("tags", type=tags_arg, metavar="TAGS", help="comma-separated tags, e.g. facts")
    run.add_argument("--param", action="append", default=[], type=param_arg, metavar="KEY=VALUE",
                     help="a parameter; VALUE is read as JSON when it is JSON, else as a string (repeatable)")
    run.add_argument("--timeout", type=_seconds, metavar="S",
                     help="seconds per tasklet (default: [tasklets].timeout)")
    run.set_defaults(func=cmd_run)
    for parser in (listing, run):
        config_option(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")


def tags_arg(text: str) -> list[str]:
    tags = [t.strip() for t in text.split(",") if t.strip()]
    if not tags and text:
        raise argparse.ArgumentTypeError(f"{text!r} names no tag")
    return tags


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


def param_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _engine(args) -> Engine:
    from appliance.cli import load_config  # the entry point reads the file

    return Engine.from_config(load_config(args).tasklets)


def cmd_list(args) -> int:
    engine = _engine(args)
    selected = engine.select(args.tags)
    if args.json:
        print(json.dumps({"tasklets": [t.as_dict() for t in selected],
                          "errors": [vars(e) for e in engine.errors]}, indent=2))
    else:
        rows = [(t.name, ",".join(t.tags), str(t.priority), t.file) for t in selected]
        _table(("NAME", "TAGS", "PRIORITY", "FILE"), rows)
        _print_errors(engine, sys.stdout)
    return 1 if engine.errors else 0


def cmd_run(args) -> int:
    engine = _engine(args)
    if not args.json:
        _print_errors(engine, sys.stderr)
    results = engine.execute(args.tags, dict(args.param), timeout=args.timeout)
    if args.json:
        print(json.dumps({"results": [r.as_dict() for r in results],
                          "errors": [vars(e) for e in engine.errors]}, indent=2))
    else:
        for r in results:
            _print_result(r)
    if not results:
        print(f"appliance: no tasklet has the tags {','.join(args.tags)}", file=sys.stderr)
    return 0 if results and all(r.status in ("ok", "skipped") for r in results) else 1


def _table(header: tuple, rows: list[tuple]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


def _print_errors(engine: Engine, stream) -> None:
    if engine.errors:
        print(f"\n{len(engine.errors)} file(s) not loaded:", file=stream)
    for error in engine.errors:
        print(f"  {error}", file=stream)


def _print_result(r: Result) -> None:
    print(f"{r.name}: {r.status} in {r.duration:.2f} s")
    if r.status == "ok":
        print(_indent(json.dumps(r.value, indent=2)))
    if r.output:
        print("  output:\n" + _indent(r.output.rstrip("\n"), "    "))
    if r.error:
        print("  error:\n" + _indent(r.error.rstrip("\n"), "    "))


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
