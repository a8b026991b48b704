"""events.*: what happened to the machines of the domain, newest first."""

from __future__ import annotations

from collections.abc import Callable

from appliance.api.dispatch import exposed
from appliance.osis.schema import domain
from appliance.osis.store import ObjectStore
from appliance.services import Guid, Limit


class Events:
    name = "events"

    def __init__(self, store: Callable[[], ObjectStore]):
        self.store = store

    @exposed(http="GET /events")
    def list(self, machine: Guid | None = None, kind: str | None = None,
             limit: Limit = 100) -> list[domain.Event]:
        """Recent events, optionally of one machine or one kind."""
        where = [(col, "=", value) for col, value in (("machine", machine), ("kind", kind)) if value]
        return self.store().query("event", where, order_by="timestamp", descending=True, limit=limit)
