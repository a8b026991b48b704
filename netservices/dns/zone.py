"""The zones this server is authoritative for, and how a name is looked up in them.

`Authority` holds the domain zone and its reverse zones (in-addr.arpa, ip6.arpa). Its
records come from three places: the appliance itself (SOA, NS and its own address),
static records (config or zone file) and hosts — the inventory's machines, set and
removed while serving (`set_host`, `remove_host`). Every change bumps the SOA serial
and tells the subscribers (the core drops its pre-built answers). No I/O, no clock.
"""

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Protocol

from netservices.dns import wire
from netservices.dns.wire import Name, Record

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


@dataclass(frozen=True)
class Host:
    """A machine's DNS identity: NAME.DOMAIN with A/AAAA records and their PTRs."""

    name: str
    """Host name, relative to the domain ("web1"), or absolute with a final dot."""
    addresses: tuple[Address, ...]


class Records(Protocol):
    """What the inventory offers DNS: every host it knows, read once at start-up.

    Later changes are pushed with `Authority.set_host` / `Authority.remove_host`.
    """

    def hosts(self) -> Iterable[Host]: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """The authoritative answer to one question (RFC 1034 4.3.2)."""

    rcode: int
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)


def reverse_zone(net: Network) -> Name:
    """The reverse zone holding `net`'s PTRs, widened to a label boundary (8 or 4 bits)."""
    step = 8 if net.version == 4 else 4
    labels = net.prefixlen // step
    full = ipaddress.ip_address(net.network_address).reverse_pointer.split(".")
    return wire.name(".".join(full[len(full) - 2 - labels:]))


def reverse_name(addr: Address) -> Name:
    return wire.name(addr.reverse_pointer)


class _Zone:
    """One zone's records by owner name, and the names that exist (RFC 8020)."""

    def __init__(self, origin: Name):
        self.origin = origin
        self.soa: Record | None = None
        self.nodes: dict[Name, dict[int, list[Record]]] = {}
        self._refs: dict[Name, int] = {}  # names with records below them: empty non-terminals

    def contains(self, name: Name) -> bool:
        return name[len(name) - len(self.origin):] == self.origin

    def exists(self, name: Name) -> bool:
        return name in self._refs

    def add(self, rr: Record) -> None:
        owner = wire.owner(rr)
        self.nodes.setdefault(owner, {}).setdefault(wire.rtype(rr), []).append(rr)
        for cut in range(len(self.origin), len(owner) + 1):
            name = owner[len(owner) - cut:]
            self._refs[name] = self._refs.get(name, 0) + 1

    def remove(self, rr: Record) -> None:
        owner, rtype = wire.owner(rr), wire.rtype(rr)
        node = self.nodes[owner]
        node[rtype] = [r for r in node[rtype] if r is not rr]
        if not node[rtype]:
            del node[rtype]
            if not node:
                del self.nodes[owner]
        for cut in range(len(self.origin), len(owner) + 1):
            name = owner[len(owner) - cut:]
            self._refs[name] -= 1
            if not self._refs[name]:
                del self._refs[name]

    def set_soa(self, soa: Record) -> None:
        if self.soa is not None:
            self.remove(self.soa)
        self.add(soa)
        self.soa = soa


class Authority:
    """The domain zone and its reverse zones; see the module docstring."""

    def __init__(self, domain: str, nameserver: Host, *, reverse: Iterable[Network] = (),
                 static: Iterable[Record] = (), ttl: int = 300, serial: int = 1):
        self.domain = wire.name(domain)
        self.ttl = ttl
        self.serial = serial
        self.nameserver = self._fqdn(nameserver.name)
        self.origins = sorted({self.domain, *(reverse_zone(n) for n in reverse)}, key=len,
                              reverse=True)
        self._hosts: dict[Name, list[Record]] = {}
        self._subscribers: list[Callable[[], None]] = []
        self._zones = [_Zone(origin) for origin in self.origins]
        for zone in self._zones:
            self._place(wire.ns_record(zone.origin, self.nameserver, ttl), add=True)
            zone.set_soa(self._soa(zone.origin))
        for rr in static:
            self._place(rr, add=True)
        self._set(self.nameserver, nameserver.addresses)

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every change of the zones."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling `callback` (nothing happens if it was not subscribed)."""
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def set_host(self, host: Host) -> None:
        """Add or replace a host's A/AAAA records and the PTRs of its addresses."""
        self._set(self._fqdn(host.name), host.addresses)
        self._changed()

    def remove_host(self, name: str) -> bool:
        """Remove a host's records; False when there was no such host."""
        old = self._hosts.pop(self._fqdn(name), None)
        for rr in old or ():
            self._place(rr, add=False)
        if old is not None:
            self._changed()
        return old is not None

    def load(self, records: Records) -> None:
        """Set every host of an inventory at once (one serial bump)."""
        for host in records.hosts():
            self._set(self._fqdn(host.name), host.addresses)
        self._changed()

    def names(self) -> list[str]:
        """The host names in the zone (absolute), for logs and tests."""
        return sorted(wire.text(n) for n in self._hosts)

    def lookup(self, qname: Name, qtype: int) -> Answer | None:
        """Answer from the zones, or None when `qname` is in none of them."""
        zone = self._zone(qname)
        if zone is None:
            return None
        result = Answer(wire.NOERROR)
        name, seen = qname, set()
        while zone is not None and name not in seen:
            seen.add(name)
            node = zone.nodes.get(name)
            if node is None:
                if not zone.exists(name):
                    result = Answer(wire.NXDOMAIN, result.answer)  # RFC 6604 2.1
                return self._negative(result, zone)
            found = _select(node, qtype)
            if found:
                result.answer.extend(found)
                self._add_glue(result)
                return result
            cname = node.get(wire.TYPE_CNAME)
            if not cname:
                return self._negative(result, zone)
            result.answer.extend(cname)  # RFC 1034 4.3.2 3a: restart at the canonical name
            name = wire.target(cname[0])
            zone = self._zone(name)
        return result

    def _negative(self, result: Answer, zone: _Zone) -> Answer:
        result.authority.append(zone.soa)  # RFC 2308 3: the SOA goes with NXDOMAIN/NODATA
        return result

    def _add_glue(self, result: Answer) -> None:
        """A/AAAA of the targets of NS, MX and SRV answers, when they are ours."""
        for rr in result.answer:
            if wire.rtype(rr) not in (wire.TYPE_NS, wire.TYPE_MX, wire.TYPE_SRV):
                continue
            name = wire.target(rr)
            zone = self._zone(name)
            node = zone.nodes.get(name, {}) if zone else {}
            for rtype in (wire.TYPE_A, wire.TYPE_AAAA):
                result.additional.extend(node.get(rtype, ()))

    def _zone(self, name: Name) -> _Zone | None:
        for zone in self._zones:
            if zone.contains(name):
                return zone
        return None

    def _fqdn(self, host: str) -> Name:
        return wire.name(host) if host.endswith(".") else wire.name(host) + self.domain

    def _host_records(self, fqdn: Name, addresses: Iterable[Address]) -> list[Record]:
        records = []
        for addr in addresses:
            records.append(wire.address_record(fqdn, addr, self.ttl))
            ptr = reverse_name(addr)
            if any(ptr[len(ptr) - len(o):] == o for o in self.origins if o != self.domain):
                records.append(wire.ptr_record(ptr, fqdn, self.ttl))
        return records

    def _set(self, fqdn: Name, addresses: Iterable[Address]) -> None:
        for rr in self._hosts.get(fqdn, ()):
            self._place(rr, add=False)
        self._hosts[fqdn] = self._host_records(fqdn, addresses)
        for rr in self._hosts[fqdn]:
            self._place(rr, add=True)

    def _place(self, rr: Record, *, add: bool) -> None:
        """Add `rr` to (or remove it from) the zone its owner is in; others are ignored."""
        zone = self._zone(wire.owner(rr))
        if zone is not None:
            zone.add(rr) if add else zone.remove(rr)

    def _changed(self) -> None:
        self.serial = (self.serial + 1) & 0xFFFFFFFF  # RFC 1982 arithmetic
        for zone in self._zones:
            zone.set_soa(self._soa(zone.origin))
        for callback in list(self._subscribers):
            callback()

    def _soa(self, origin: Name) -> Record:
        hostmaster = (b"hostmaster",) + self.domain
        return wire.soa_record(origin, self.nameserver, hostmaster, self.serial, self.ttl)


def _select(node: dict[int, list[Record]], qtype: int) -> list[Record]:
    if qtype == wire.TYPE_ANY:  # RFC 8482 allows less; a small zone can afford all
        return [rr for rrs in node.values() for rr in rrs]
    return node.get(qtype, [])
