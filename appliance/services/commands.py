"""`appliance machines …`: the inventory from the command line, through the machines
service (the same calls, checks and side effects as the API's).

    appliance machines list [--state READY] [--json]
    appliance machines show node-3a4b5c          (host name, guid, MAC or address)
    appliance machines delete node-3a4b5c --yes  (with its DNS records and agent)

It opens the object store named by the config, as `appliance osis` does, so it works on
the appliance itself whether or not `appliance run` is running.
"""

import json
import re
import sys

from appliance.inventory import find_machine
from appliance.osis.commands import open_configured
from appliance.osis.schema import as_dict, domain
from appliance.osis.store import NotFound
from appliance.services.machines import Machines

_MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def add_commands(sub, config_option) -> None:
    machines = sub.add_parser("machines", help="list, show or delete enrolled machines")
    actions = machines.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the inventory, by host name")
    listing.add_argument("--state", type=str.upper, choices=list(domain.MachineState._NAMES_TO_VALUES),
                         help="only machines in this state")
    listing.set_defaults(func=cmd_list)
    show = actions.add_parser("show", help="one machine, with its NICs and disks")
    show.add_argument("machine", help="host name, guid, MAC or address")
    show.set_defaults(func=cmd_show)
    delete = actions.add_parser("delete", help="forget a machine, its DNS records and its agent "
                                "(it enrolls again on its next boot)")
    delete.add_argument("machine", help="host name, guid, MAC or address")
    delete.add_argument("--yes", action="store_true", help="do it (without it, only say what would go)")
    delete.set_defaults(func=cmd_delete)
    for parser in (listing, show, delete):
        config_option(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")


def _find(store, text: str):
    """The stored machine `text` names (guid, host name, MAC or IPv4), or None."""
    value = text.strip().lower()
    if _MAC.match(value):
        return find_machine(store, "mac", value.replace("-", ":"))
    if _IPV4.match(value):
        return find_machine(store, "ip", value)
    try:
        return store.get("machine", value)
    except NotFound:
        return find_machine(store, "hostname", value)


def cmd_list(args) -> int:
    store = open_configured(args)
    try:
        found = Machines(lambda: store).list(state=args.state)
    finally:
        store.close()
    rows = [as_dict(s.obj) for s in found]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows), end="")
    return 0


def cmd_show(args) -> int:
    store = open_configured(args)
    try:
        found = _find(store, args.machine)
    finally:
        store.close()
    if found is None:
        print(f"appliance: no machine {args.machine!r} (by guid, host name, MAC or address)", file=sys.stderr)
        return 1
    data = {**as_dict(found.obj), "_revision": found.revision}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            if value not in (None, [], {}):
                print(f"{key}: {json.dumps(value)}")
    return 0


def cmd_delete(args) -> int:
    store = open_configured(args)
    try:
        found = _find(store, args.machine)
        if found is None:
            print(f"appliance: no machine {args.machine!r} (by guid, host name, MAC or address)",
                  file=sys.stderr)
            return 1
        name = f"{found.obj.hostname or '-'} ({found.obj.guid})"
        if not args.yes:
            print(f"would delete {name}, its DNS records and its agent; add --yes to do it")
            return 1
        done = Machines(lambda: store).delete(found.obj.guid, revision=found.revision)
    finally:
        store.close()
    print(json.dumps(done) if args.json else f"deleted {name}")
    return 0


def table(rows: list[dict]) -> str:
    """Machines (as the API gives them) as a text table, one line each, and a count."""
    lines = [f"{'hostname':16} {'ip':15} {'state':10} {'serial':12} {'mac':18} {'disks':24} cpus  memory"]
    for m in rows:
        disks = ",".join(f"{d['name']}:{d['serial'] or '-'}" for d in m["disks"]) or "-"
        macs = ",".join(n["mac"] for n in m["interfaces"]) or "-"
        lines.append(f"{m['hostname'] or '-':16} {m['ip'] or '-':15} {m['state']:10} "
                     f"{m['serial'] or '-':12} {macs:18} {disks:24} {m['cpus']:4}  {m['memory_mb']} MiB")
    lines.append(f"{len(rows)} machine(s)")
    return "\n".join(lines) + "\n"
