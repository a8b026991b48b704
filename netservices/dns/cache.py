"""A small cache of forwarded answers that honours their TTLs; the clock is passed in.

Entries expire after the smallest TTL of their records (RFC 1035 7.4), negative answers
after the SOA's negative TTL (RFC 2308 5). The cache holds at most `size` entries and
drops the least recently used. An entry returns with its age, so that the TTLs handed
to clients count down.
"""

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

MAX_TTL = 86400  # RFC 8767 4: a week at most; a day is plenty for a rack


class Cache:
    """Bounded LRU of (value, stored_at, expires_at) by key."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[Any, float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now: float) -> tuple[Any, int] | None:
        """(value, whole seconds since stored), or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored, expires = entry
        if now >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value, int(now - stored)

    def put(self, key: Hashable, value: Any, ttl: int, now: float) -> None:
        """Keep `value` for `ttl` seconds; a TTL of 0 is not cached (RFC 1035 3.2.1)."""
        if ttl <= 0 or self.size <= 0:
            return
        self._entries[key] = (value, now, now + min(ttl, MAX_TTL))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
