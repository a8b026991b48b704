"""When to poll which agent: every `interval` seconds, each agent at its own phase. Pure.

An agent's phase is a fixed point of the interval taken from a hash of its JID, so that
1000 agents are spread evenly over the interval instead of being hit in the same
millisecond, and each keeps its phase across restarts of the appliance. An agent is
polled at the slots `k * interval + phase`; the first one after it came online is its
first. A slot that comes while the agent's previous poll is still outstanding is skipped
(and counted): there is at most one poll per agent in flight.
"""

import hashlib
from collections.abc import Container, Iterable


class Plan:
    """The next slot of every agent being polled; the clock is passed in."""

    def __init__(self, interval: float):
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.interval = interval
        self.next: dict[str, float] = {}

    def phase(self, jid: str) -> float:
        """Seconds into each interval at which `jid` is polled."""
        fraction = int.from_bytes(hashlib.sha256(jid.encode()).digest()[:8], "big") / 2**64
        return fraction * self.interval

    def slot_after(self, jid: str, now: float) -> float:
        """The first slot of `jid` strictly after `now`."""
        base = now - now % self.interval + self.phase(jid)
        while base <= now:
            base += self.interval
        return base

    def update(self, online: Iterable[str], now: float) -> list[str]:
        """Follow who is online: new agents get their next slot, gone ones are dropped
        (returned)."""
        online = set(online)
        gone = [jid for jid in self.next if jid not in online]
        for jid in gone:
            del self.next[jid]
        for jid in online - self.next.keys():
            self.next[jid] = self.slot_after(jid, now)
        return gone

    def due(self, now: float, busy: Container[str]) -> tuple[list[str], int]:
        """The agents to poll now, and how many slots were skipped because the agent's
        previous poll is outstanding (`busy`). Each gets its next slot."""
        start, skipped = [], 0
        for jid, slot in self.next.items():
            if slot > now:
                continue
            self.next[jid] = self.slot_after(jid, now)
            if jid in busy:
                skipped += 1
            else:
                start.append(jid)
        return start, skipped

    def next_due(self) -> float | None:
        """The earliest next slot, None with no agents."""
        return min(self.next.values(), default=None)
