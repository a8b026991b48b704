"""enroll.*: a machine's enrollment image reports its facts; the machine joins the domain.

Idempotent on the system UUID and on MACs: a machine that enrolls again is updated,
never duplicated, and keeps its name and address. A new machine gets a host name from
`[appserver].enroll_hostname`, its boot NIC's address as a DHCP reservation (the
appliance's DHCP server reads reservations from the machines), a DNS A record (and so
its PTR), XMPP agent credentials (its JID, password, server, and the controller JIDs it
takes jobs from), and an Event. Facts that make no sense are refused
with 400 before anything is stored.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from appliance.api.dispatch import ApiError, exposed
from appliance.inventory import find_machine
from appliance.osis.kv import NEW, Conflict
from appliance.osis.schema import domain
from appliance.osis.store import NotFound, ObjectStore
from appliance.services import int_in

Mac = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", to_lower=True)]
Text = Annotated[str, StringConstraints(max_length=256)]
ENROLLED = domain.MachineState.ENROLLED


class Nic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mac: Mac
    name: Text | None = None
    driver: Text | None = None
    link: StrictBool | None = None
    ip: Annotated[str, StringConstraints(max_length=45), WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"},
                   {"const": ""}]})] | None = None
    boot: StrictBool = False
    lldp_chassis: Text | None = None
    lldp_port: Text | None = None

    @field_validator("ip")
    @classmethod
    def _address(cls, value):
        if value in (None, ""):
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("is not an IP address") from None


class DiskFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    size_bytes: int_in(0, 2**60)
    serial: Text | None = None
    model: Text | None = None
    rotational: StrictBool | None = None


@dataclass(frozen=True)
class EnrollSettings:
    domain: str
    hostname: str  # pattern
    action: Literal["poweroff", "reboot", "wait"]
    xmpp_server: str
    controllers: tuple[str, ...] = ()  # bare JIDs the agent takes jobs from


def _clean(text: str | None) -> str | None:
    """Trimmed text, None when empty. The enrollment image sends bytes above 0x7e as
    \\u00XX (busybox has no UTF-8 encoder): put UTF-8 sequences back together."""
    text = (text or "").strip()
    try:
        text = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass  # real Unicode, or bytes that are not UTF-8: keep them as they came
    return text or None


class Enroll:
    name = "enroll"

    def __init__(self, store: Callable[[], ObjectStore], settings: EnrollSettings,
                 clock: Callable[[], float] = time.time):
        self.store, self.settings, self.clock = store, settings, clock

    @exposed(http="POST /enroll", enroll=True)
    def enroll(self, interfaces: Annotated[list[Nic], Field(min_length=1, max_length=64)],
               uuid: Text | None = None, serial: Text | None = None, vendor: Text | None = None,
               product: Text | None = None, board_serial: Text | None = None,
               chassis_serial: Text | None = None, cpus: int_in(1, 65536) = 1,
               cpu_model: Text | None = None, memory_mb: int_in(1, 2**34) = 1,
               disks: Annotated[list[DiskFacts], Field(max_length=256)] = ()) -> dict[str, object]:
        """Enroll (or re-enroll) the machine these facts describe; the reply says what it
        is now called, its address, its agent credentials and what to do next."""
        facts = {"uuid": uuid, "serial": serial, "vendor": vendor, "product": product,
                 "board_serial": board_serial, "chassis_serial": chassis_serial, "cpus": cpus,
                 "cpu_model": cpu_model, "memory_mb": memory_mb, "disks": disks}
        store = self.store()
        for _ in range(3):  # another enrollment of the same machine may race this one
            try:
                return self._enroll_once(store, interfaces, facts)
            except Conflict:
                continue
        raise ApiError("conflict", "enroll: the machine changed three times meanwhile; retry")

    def _enroll_once(self, store: ObjectStore, nics: list[Nic], facts: dict) -> dict[str, object]:
        found = self._existing(store, facts.get("uuid"), [n.mac for n in nics])
        machine = found.obj if found else domain.Machine(guid=str(uuidlib.uuid4()), created=self.clock())
        self._apply(machine, nics, facts)
        if not machine.hostname:
            machine.hostname = self._hostname(store, machine, nics)
        machine.state = max(machine.state or 0, ENROLLED)
        machine.updated = self.clock()
        # One batch (one transaction, with SQLite and with etcd), its agent and name before
        # it: whoever sees the machine ENROLLED finds them in the store, and a crash leaves
        # all or none.
        agent, new_agent = self._agent(store, machine)
        batch = [(agent, NEW)] if new_agent else []
        if machine.ip:
            batch.append((self._a_record(machine), None))
        batch.append((machine, found.revision if found else NEW))
        for result in store.put_many(batch):
            if isinstance(result, Conflict):
                raise result  # another enrollment of this machine won: try again
        kind = "machine.reenrolled" if found else "machine.enrolled"
        store.put(domain.Event(guid=str(uuidlib.uuid4()), timestamp=self.clock(), kind=kind,
                               machine=machine.guid, message=f"{machine.hostname} ({machine.ip})",
                               data={"serial": machine.serial or "", "uuid": machine.uuid or ""}))
        fqdn = f"{machine.hostname}.{self.settings.domain}"
        return {"guid": machine.guid, "hostname": machine.hostname, "fqdn": fqdn, "ip": machine.ip,
                "action": self.settings.action, "known": found is not None,
                "agent": {"jid": agent.jid, "password": agent.password,
                          "server": self.settings.xmpp_server,
                          "controllers": list(self.settings.controllers)}}

    @staticmethod
    def _existing(store: ObjectStore, uuid: str | None, macs: list[str]):
        """The machine with this UUID, else one with any of these MACs."""
        keys = ([("uuid", uuid.lower())] if _clean(uuid) else []) + [("mac", mac) for mac in macs]
        for column, value in keys:
            found = find_machine(store, column, value)
            if found is not None:
                return found
        return None

    @staticmethod
    def _apply(machine, nics: list[Nic], facts: dict) -> None:
        for key in ("serial", "vendor", "product", "board_serial", "chassis_serial", "cpu_model"):
            setattr(machine, key, _clean(facts.get(key)))
        machine.uuid = _clean(facts.get("uuid")) and facts["uuid"].strip().lower()
        machine.cpus, machine.memory_mb = facts["cpus"], facts["memory_mb"]
        machine.interfaces = [domain.NetworkInterface(**n.model_dump()) for n in nics]
        machine.disks = [domain.Disk(**d.model_dump()) for d in facts.get("disks") or ()]
        boot = next((n for n in nics if n.boot and n.ip), None) or next((n for n in nics if n.ip), None)
        if boot is not None and boot.ip and not machine.ip:
            machine.ip = boot.ip  # its reservation from now on

    def _hostname(self, store: ObjectStore, machine, nics: list[Nic]) -> str:
        boot = next((n for n in nics if n.boot), nics[0])
        base = self.settings.hostname.format(mac6=boot.mac.replace(":", "")[-6:],
                                             serial=machine.serial or "", uuid8=(machine.uuid or "")[:8])
        base = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:55] or "node"
        name, n = base, 1
        while store.query("machine", [("hostname", "=", name)], limit=1):
            n += 1
            name = f"{base}-{n}"
        return name

    def _agent(self, store: ObjectStore, machine):
        """(its Agent, whether it is new and still to be stored)."""
        guid = f"agent-{machine.guid}"
        try:
            return store.get("agent", guid).obj, False
        except NotFound:  # the first enrollment
            return domain.Agent(guid=guid, jid=f"{machine.hostname}@{self.settings.domain}",
                                machine=machine.guid, password=secrets.token_urlsafe(18)), True

    def _a_record(self, machine):
        return domain.DnsRecord(guid=f"{machine.guid}-a", name=f"{machine.hostname}.{self.settings.domain}",
                                rtype="A", value=machine.ip, machine=machine.guid)
