"""The server's view of its addresses: pools, leases, offers, and who may take what.

`LeaseTable` is plain in-memory state, loaded from a `LeaseStore` at start. It enforces
the one rule that matters most: an address held by one client (bound and not expired,
offered and not timed out, declined, or reserved for another MAC) is never given to
another. Changes that must be durable are queued in `pending`; the server commits them
to the store before it sends the replies that announce them.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from netservices.dhcp.leases import BOUND, DECLINED, FREE, Lease

DECLINE_HOLD = 600  # seconds a declined address is left alone (dnsmasq: 10 minutes)


@dataclass(eq=False)
class Pool:
    """A subnet served here and the dynamic range inside it (empty: reservations only)."""

    subnet: IPv4Network
    first: IPv4Address | None = None
    last: IPv4Address | None = None
    router: IPv4Address | None = None
    cursor: int = field(default=0, repr=False)

    def dynamic(self, ip: IPv4Address) -> bool:
        return self.first is not None and self.first <= ip <= self.last

    def size(self) -> int:
        return int(self.last) - int(self.first) + 1 if self.first is not None else 0


@dataclass(slots=True)
class _Offer:
    mac: str
    until: float


class LeaseTable:
    """Leases by address and by MAC, offers in flight, and the pools they come from."""

    def __init__(self, pools: Iterable[Pool], leases: Iterable[Lease] = ()):
        self.pools = list(pools)
        self.by_ip: dict[IPv4Address, Lease] = {}
        self.by_mac: dict[str, Lease] = {}
        self.offers: dict[IPv4Address, _Offer] = {}
        self.offered_to: dict[str, IPv4Address] = {}
        self.pending: list[Lease] = []
        for lease in leases:
            self._set(lease)

    def pool_for(self, address: IPv4Address) -> Pool | None:
        """The pool whose subnet holds `address` (the relay's giaddr or our own address)."""
        return next((p for p in self.pools if address in p.subnet), None)

    def lease_of(self, mac: str) -> Lease | None:
        return self.by_mac.get(mac)

    def offer_of(self, mac: str, now: float) -> IPv4Address | None:
        ip = self.offered_to.get(mac)
        offer = self.offers.get(ip) if ip is not None else None
        return ip if offer is not None and offer.mac == mac and offer.until > now else None

    def holder(self, ip: IPv4Address, now: float) -> str | None:
        """The MAC holding `ip` now ("" when declined), or None when nobody does."""
        lease = self.by_ip.get(ip)
        if lease is not None and lease.expires > now and lease.state != FREE:
            return lease.mac if lease.state == BOUND else ""
        offer = self.offers.get(ip)
        if offer is not None and offer.until > now:
            return offer.mac
        return None

    def pick(self, pool: Pool, free: Callable[[IPv4Address], bool]) -> IPv4Address | None:
        """The next address of the pool's range for which `free(ip)` holds, round robin."""
        size = pool.size()
        base = int(pool.first) if pool.first is not None else 0
        for step in range(size):
            ip = IPv4Address(base + (pool.cursor + step) % size)
            if free(ip):
                pool.cursor = (pool.cursor + step + 1) % size
                return ip
        return None

    def offer(self, mac: str, ip: IPv4Address, until: float) -> None:
        self.withdraw(mac)
        previous = self.offers.get(ip)
        if previous is not None and self.offered_to.get(previous.mac) == ip:
            del self.offered_to[previous.mac]  # a lapsed offer: keeps both maps pool-sized
        self.offers[ip] = _Offer(mac, until)
        self.offered_to[mac] = ip

    def withdraw(self, mac: str) -> None:
        """Forget the offer made to `mac` (it chose another server, or took the lease)."""
        ip = self.offered_to.pop(mac, None)
        if ip is not None and ip in self.offers and self.offers[ip].mac == mac:
            del self.offers[ip]

    def bind(self, lease: Lease) -> None:
        self.withdraw(lease.mac)
        self._record(lease)

    def release(self, mac: str, ip: IPv4Address, now: float) -> bool:
        lease = self.by_ip.get(ip)
        if lease is None or lease.mac != mac or lease.state != BOUND:
            return False
        self._record(Lease(ip, mac, now, FREE, lease.hostname))
        return True

    def decline(self, ip: IPv4Address, now: float) -> None:
        self._record(Lease(ip, "", now + DECLINE_HOLD, DECLINED))

    def take_pending(self) -> list[Lease]:
        pending, self.pending = self.pending, []
        return pending

    def _record(self, lease: Lease) -> None:
        self._set(lease)
        self.pending.append(lease)

    def _set(self, lease: Lease) -> None:
        old = self.by_ip.get(lease.ip)
        if old is not None and self.by_mac.get(old.mac) is old:
            del self.by_mac[old.mac]
        self.by_ip[lease.ip] = lease
        if lease.state == BOUND:
            previous = self.by_mac.get(lease.mac)
            if previous is not None and previous.ip != lease.ip and previous.state == BOUND:
                # one address per MAC: the client moved, its old address is free again
                freed = Lease(previous.ip, previous.mac, 0.0, FREE, previous.hostname)
                self.by_ip[previous.ip] = freed
                self.pending.append(freed)
            self.by_mac[lease.mac] = lease
