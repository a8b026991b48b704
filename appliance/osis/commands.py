"""`appliance osis …`: look at and repair the object store from the command line.

    appliance osis list machine --where state=READY --where mac=52:54:00:12:34:56 --json
    appliance osis get machine 3f0c…
    appliance osis reindex
"""

import argparse
import json
import re
import sys

from appliance.osis.schema import TYPES, as_dict
from appliance.osis.store import open_store
from appliance.osis.views import OPERATORS

_CONDITION = re.compile(r"^([A-Za-z_]\w*)\s*(" + "|".join(
    re.escape(op) for op in sorted(OPERATORS, key=len, reverse=True)) + r")(.*)$")


def add_commands(sub, config_option) -> None:
    osis = sub.add_parser("osis", help="look at and repair the object store")
    actions = osis.add_subparsers(dest="action", required=True, metavar="ACTION")
    types = f"object type: {', '.join(TYPES)}"

    show = actions.add_parser("get", help="print one object")
    show.add_argument("type", help=types)
    show.add_argument("id")
    show.set_defaults(func=cmd_get)

    listing = actions.add_parser("list", help="list objects, filtered through the views")
    listing.add_argument("type", help=types)
    listing.add_argument("--where", action="append", default=[], type=_condition,
                         metavar="COL=VALUE", help=f"filter (operators: {' '.join(OPERATORS)}); repeatable")
    listing.add_argument("--order-by", metavar="COL")
    listing.add_argument("--desc", action="store_true", help="descending order")
    listing.add_argument("--limit", type=int, metavar="N")
    listing.set_defaults(func=cmd_list)

    reindex = actions.add_parser("reindex", help="rebuild every view from the key/value store")
    reindex.set_defaults(func=cmd_reindex)
    for parser in (show, listing, reindex):
        config_option(parser)
        if parser is not reindex:
            parser.add_argument("--json", action="store_true", help="print JSON")


def _condition(text: str) -> tuple[str, str, str]:
    match = _CONDITION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not COLUMN=VALUE (or another operator)")
    return match.group(1), match.group(2), match.group(3)


def open_configured(args):
    """The object store named by the config file of `args` (-c, else the default)."""
    from appliance.cli import load_config  # the entry point reads the file

    cfg = load_config(args)
    return open_store(cfg.osis, cfg.node.state_dir)


def cmd_get(args) -> int:
    store = open_configured(args)
    try:
        found = store.get(args.type, args.id)
    finally:
        store.close()
    data = {**as_dict(found.obj), "_revision": found.revision}
    print(json.dumps(data, indent=2) if args.json else _text(data))
    return 0


def cmd_list(args) -> int:
    store = open_configured(args)
    try:
        if args.where or args.order_by:
            found = store.query(args.type, args.where, args.order_by, args.desc, args.limit)
        else:  # straight from the key/value store, the truth, corrupt values included
            found = store.scan(args.type)
            found[:] = found[::-1][:args.limit] if args.desc else found[:args.limit]
    finally:
        store.close()
    rows = [{**as_dict(s.obj), "_revision": s.revision} for s in found]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _table(TYPES[args.type.lower()], rows)
    for problem in found.corrupt:
        print(f"appliance: {problem}", file=sys.stderr)
    return 1 if found.corrupt else 0


def cmd_reindex(args) -> int:
    store = open_configured(args)
    try:
        done = store.reindex()
    finally:
        store.close()
    print(", ".join(f"{name}: {r.fixed}" for name, r in done.items()))
    corrupt = [key for r in done.values() for key in r.corrupt]
    for problem in corrupt:
        print(f"appliance: {problem}", file=sys.stderr)
    return 1 if corrupt else 0


def _text(data: dict) -> str:
    return "\n".join(f"{k}: {json.dumps(v)}" for k, v in data.items() if v not in (None, [], {}))


def _table(otype, rows: list[dict]) -> None:
    if not rows:
        print(f"no {otype.name} objects")
        return
    cols = ["guid"] + [c.name for c in otype.columns if not c.multi and c.name in rows[0]]
    cells = [[str(r.get(c, "")) if r.get(c) is not None else "-" for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    for line in [cols, *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
