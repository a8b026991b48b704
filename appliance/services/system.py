"""system.*: the appliance itself: its version and the health of each component."""

from __future__ import annotations

from collections.abc import Callable

from appliance import __version__
from appliance.api.dispatch import exposed


class System:
    name = "system"

    def __init__(self, status: Callable[[], dict[str, dict]]):
        self.status = status

    @exposed(http="GET /system/version")
    def version(self) -> dict[str, str]:
        """The appliance's version."""
        return {"version": __version__}

    @exposed(http="GET /system/health")
    def health(self) -> dict[str, object]:
        """"ok" when every component is running, else "degraded"; each component's state."""
        components = self.status()
        ok = all(c["state"] == "running" for c in components.values())
        return {"status": "ok" if ok else "degraded", "components": components}
