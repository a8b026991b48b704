"""Where reservations come from: the `Inventory` interface and its static implementation.

The server asks the inventory two questions, the way smee asks its backend: which
address is reserved for this MAC, and for which MAC is this address reserved. The
appliance answers from its config today and from enrolled machines later (OSIS).
"""

from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import Protocol

from netservices.dhcp.config import Reservation


class Inventory(Protocol):
    """Reservations by MAC (lower-case, colon-separated) and by address."""

    def reservation(self, mac: str) -> Reservation | None:
        """The fixed address (and host name) of this MAC, if any."""

    def reserved_for(self, ip: IPv4Address) -> str | None:
        """The MAC this address is reserved for, if any."""


class StaticInventory:
    """Reservations from a list, e.g. `[dhcp].reservations`."""

    def __init__(self, reservations: Iterable[Reservation] = ()):
        self._by_mac = {r.mac: r for r in reservations}
        self._by_ip = {r.ip: r.mac for r in self._by_mac.values()}

    def reservation(self, mac: str) -> Reservation | None:
        return self._by_mac.get(mac)

    def reserved_for(self, ip: IPv4Address) -> str | None:
        return self._by_ip.get(ip)
