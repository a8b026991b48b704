"""machines.*: the inventory of enrolled machines, backed by OSIS."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, WithJsonSchema

from appliance.api.dispatch import exposed
from appliance.osis.schema import domain
from appliance.osis.store import NotFound, ObjectStore, Stored
from appliance.services import Guid, Int, Limit

State = Literal[tuple(domain.MachineState._NAMES_TO_VALUES)]  # type: ignore[valid-type]
Hostname = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]


def _ipv4(value: str) -> str:
    return str(ipaddress.IPv4Address(value))


IPv4Text = Annotated[str, AfterValidator(_ipv4), WithJsonSchema({"type": "string", "format": "ipv4"})]


class MachineChanges(BaseModel):
    """The fields of a machine an operator may change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")
    hostname: Hostname | None = None
    state: State | None = None
    ip: IPv4Text | None = None
    tags: dict[str, str] | None = None


class Machines:
    name = "machines"

    def __init__(self, store: Callable[[], ObjectStore]):
        self.store = store

    @exposed(http="GET /machines")
    def list(self, state: State | None = None, mac: str | None = None, hostname: str | None = None,
             limit: Limit = 1000) -> list[domain.Machine]:
        """Machines, by host name; filter by state, a MAC of any of their NICs, or host name."""
        where = [(col, "=", value.lower() if col == "mac" else value)
                 for col, value in (("state", state), ("mac", mac), ("hostname", hostname)) if value]
        return self.store().query("machine", where, order_by="hostname", limit=limit)

    @exposed(http="GET /machines/{guid}")
    def get(self, guid: Guid) -> domain.Machine:
        """One machine."""
        return self.store().get("machine", guid)

    @exposed(http="PATCH /machines/{guid}", writes=True)
    def update(self, guid: Guid, changes: MachineChanges, revision: Int | None = None) -> domain.Machine:
        """Change a machine's name, state, address or tags. With `revision`, only if the
        machine is still at that revision (else 409 conflict)."""
        store = self.store()
        current = store.get("machine", guid)
        obj = current.obj
        for field, value in changes.model_dump(exclude_none=True).items():
            setattr(obj, field, domain.MachineState._NAMES_TO_VALUES[value] if field == "state" else value)
        obj.updated = time.time()
        return Stored(obj, store.put(obj, expect=revision if revision is not None else current.revision))

    @exposed(http="DELETE /machines/{guid}", writes=True)
    def delete(self, guid: Guid, revision: Int | None = None) -> dict[str, str]:
        """Forget a machine, its DNS records and its agent (it enrolls again on its next boot)."""
        store = self.store()
        store.delete("machine", guid, expect=revision)
        for type_name, key in (("dnsrecord", f"{guid}-a"), ("agent", f"agent-{guid}")):
            with contextlib.suppress(NotFound):
                store.delete(type_name, key)
        return {"deleted": guid}
