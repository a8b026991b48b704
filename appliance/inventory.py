"""The inventory as the network services see it: enrolled machines in OSIS, through the
small interfaces the services define (they never import the appliance).

- DHCP asks `MachineReservations` which address is reserved for a MAC: the config's
  static reservations first, then the address an enrolled machine was given.
- DNS is kept current by `follow_dns_records`, which loads the A/AAAA records stored at
  enrollment and applies every later change (enrolled, renamed, deleted) without restart.
"""

import asyncio
import ipaddress
import logging
from collections.abc import Callable

from appliance.log import fields
from appliance.osis.kv import Compacted, StoreError
from appliance.osis.store import NotFound, ObjectStore
from netservices.dhcp.config import Reservation
from netservices.dhcp.inventory import StaticInventory
from netservices.dns.zone import Authority, Host

log = logging.getLogger("appliance.inventory")


def find_machine(store: ObjectStore, column: str, value: str):
    """The stored machine whose `column` (a view column: mac, ip, uuid, hostname) is
    `value`, or None."""
    found = store.query("machine", [(column, "=", value)], limit=1)
    return found[0] if found else None


class MachineReservations:
    """netservices.dhcp.inventory.Inventory over the config and the enrolled machines."""

    def __init__(self, static: StaticInventory, store: Callable[[], ObjectStore | None]):
        self.static, self.store = static, store

    def reservation(self, mac: str) -> Reservation | None:
        found = self.static.reservation(mac)
        if found is not None:
            return found
        machine = self._machine("mac", mac)
        if machine is None or not machine.ip or ":" in machine.ip:
            return None  # DHCPv4 reserves IPv4 addresses only
        return Reservation(mac=mac, ip=machine.ip, hostname=machine.hostname or "")

    def reserved_for(self, ip: ipaddress.IPv4Address) -> str | None:
        found = self.static.reserved_for(ip)
        if found is not None:
            return found
        machine = self._machine("ip", str(ip))
        if machine is None or not machine.interfaces:
            return None
        nic = next((n for n in machine.interfaces if n.ip == machine.ip), machine.interfaces[0])
        return nic.mac

    def _machine(self, column: str, value: str):
        store = self.store()
        if store is None:
            return None
        try:
            found = find_machine(store, column, value)
        except StoreError as exc:  # the dynamic pool still serves
            log.warning("inventory.unavailable", extra=fields(error=exc))
            return None
        return found.obj if found else None


def _host(record) -> Host | None:
    if record.rtype not in ("A", "AAAA"):
        return None
    return Host(name=record.name.rstrip(".") + ".", addresses=(ipaddress.ip_address(record.value),))


async def follow_dns_records(store: ObjectStore, zones: Authority, poll: float = 1.0) -> None:
    """Load every stored A/AAAA record into `zones`, then follow changes until cancelled."""
    names: dict[str, str] = {}  # record guid -> the name it put in the zone
    after = await asyncio.to_thread(_load, store, zones, names)
    while True:
        try:
            changes = await asyncio.to_thread(store.changes, after, poll)
        except Compacted:
            after = await asyncio.to_thread(_load, store, zones, names)
            continue
        for change in changes:
            if change.type == "dnsrecord":
                await asyncio.to_thread(_apply, store, zones, names, change.guid)
            after = max(after, change.revision)


def _load(store: ObjectStore, zones: Authority, names: dict[str, str]) -> int:
    revision = store.revision()
    for stored in store.scan("dnsrecord"):
        host = _host(stored.obj)
        if host is not None:
            zones.set_host(host)
            names[stored.obj.guid] = host.name
    log.info("inventory.dns_loaded", extra=fields(hosts=len(names), revision=revision))
    return revision


def _apply(store: ObjectStore, zones: Authority, names: dict[str, str], guid: str) -> None:
    try:
        record = store.get("dnsrecord", guid).obj
    except NotFound:
        record = None
    old = names.pop(guid, None)
    host = _host(record) if record is not None else None
    if old is not None and (host is None or host.name != old):
        zones.remove_host(old)
    if host is not None:
        zones.set_host(host)
        names[guid] = host.name
