"""The Agent objects in OSIS as presence tells: status ONLINE/OFFLINE and last_seen.

`AgentStatus(store)` takes presence changes from the controller (`changed(jid, online)`,
cheap, from the event loop) and writes them in a background task (`run()`), latest state
per JID first, coalesced: an agent that flaps while a write is under way costs one more
write, not one per flap. An Agent is found by its `jid` column; presence of a JID no Agent
has is ignored. `known()` is the set of agent JIDs in OSIS (refreshed every `refresh`
seconds), which the controller greets when its session starts. At start, agents still
marked ONLINE by an earlier run are marked OFFLINE: those that are online say so again.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from agent.connection import wait_event
from appliance.log import fields
from appliance.osis.kv import Conflict, StoreError
from appliance.osis.schema import domain

log = logging.getLogger("appliance.fabric")

ONLINE, OFFLINE = domain.AgentStatus.ONLINE, domain.AgentStatus.OFFLINE
REFRESH = 30.0  # seconds between two reads of the agents' JIDs


class AgentStatus:
    """Presence to OSIS; see the module docstring."""

    def __init__(self, store: Callable[[], object], clock: Callable[[], float] = time.time,
                 refresh: float = REFRESH):
        self.store, self.clock, self.refresh = store, clock, refresh
        self._pending: dict[str, tuple[bool, float]] = {}
        self._wake = asyncio.Event()
        self._known: set[str] = set()
        self.writes = 0

    def known(self) -> set[str]:
        """The agent JIDs in OSIS, as last read."""
        return set(self._known)

    def changed(self, jid: str, online: bool) -> None:
        """A presence change (called by the controller)."""
        self._pending[jid] = (online, self.clock())
        self._wake.set()

    async def start(self) -> None:
        """Read the agents' JIDs and mark those left ONLINE by an earlier run OFFLINE."""
        await asyncio.to_thread(self._reset)

    async def run(self) -> None:
        """Write presence changes until cancelled; re-read the JIDs every `refresh` s."""
        next_refresh = time.monotonic() + self.refresh
        while True:
            await wait_event(self._wake, max(0.0, next_refresh - time.monotonic()))
            self._wake.clear()
            batch, self._pending = self._pending, {}
            if batch:
                await asyncio.to_thread(self._write, batch)
            if time.monotonic() >= next_refresh:
                await asyncio.to_thread(self._read_known)
                next_refresh = time.monotonic() + self.refresh

    def _read_known(self) -> None:
        try:
            self._known = {s.obj.jid for s in self.store().scan("agent") if s.obj.jid}
        except StoreError as exc:
            log.warning("fabric.agents_unreadable", extra=fields(error=exc))

    def _reset(self) -> None:
        try:
            stale = self.store().query("agent", [("status", "=", "ONLINE")])
        except StoreError as exc:
            log.warning("fabric.agents_unreadable", extra=fields(error=exc))
            return
        for found in stale:
            self._put(found.obj.jid, False, found.obj.last_seen or 0.0)
        self._read_known()

    def _write(self, batch: dict[str, tuple[bool, float]]) -> None:
        for jid, (online, when) in batch.items():
            self._put(jid, online, when)

    def _put(self, jid: str, online: bool, when: float) -> None:
        for _ in range(3):  # someone else may write the Agent meanwhile
            try:
                found = self.store().query("agent", [("jid", "=", jid)], limit=1)
                if not found:
                    return
                agent = found[0].obj
                agent.status = ONLINE if online else OFFLINE
                agent.last_seen = max(when, agent.last_seen or 0)
                self.store().put(agent, expect=found[0].revision)
                self.writes += 1
                return
            except Conflict:
                continue
            except StoreError as exc:
                log.warning("fabric.agent_status_lost", extra=fields(jid=jid, error=exc))
                return
