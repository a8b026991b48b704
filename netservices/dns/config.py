"""Settings of the dns service: the [dns] table of the appliance config."""

import ipaddress
from ipaddress import IPv4Address
from typing import Annotated

from pydantic import AfterValidator, Field, PlainSerializer, PlainValidator, StrictBool, StrictStr
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, ListenAddress, Port, Seconds
from netservices.dns import wire
from netservices.dns.forward import parse_upstream


def _forwarder(value: str) -> str:
    try:
        parse_upstream(value)
    except ValueError:
        raise ValueError('is not an upstream resolver such as "10.0.0.1" or "10.0.0.1:5353"') from None
    return value


def _record(value: str) -> str:
    try:
        records = wire.parse_zone(value, "example.", 300)
    except wire.ZoneError as exc:
        raise ValueError(f"is not a DNS record ({exc})") from None
    if len(records) != 1:
        raise ValueError("is not one DNS record")
    return value


def _network(value):
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError("is not an IP network (write it as a string)")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError("is not an IP network such as 10.0.0.0/24 or fd00::/64") from None


def _workers(value):
    if value == "auto" or (type(value) is int and 0 <= value <= 64):
        return value
    raise ValueError('is not "auto" or a number of worker processes from 0 to 64')


Upstream = Annotated[StrictStr, AfterValidator(_forwarder)]
Workers = Annotated[str | int, PlainValidator(_workers)]
StaticRecord = Annotated[StrictStr, AfterValidator(_record)]
Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, PlainValidator(_network),
                    PlainSerializer(str)]
Timeout = Annotated[float, Field(gt=0, le=30, allow_inf_nan=False)]


@dataclass(frozen=True, config=SECTION)
class DnsConfig:
    """Authoritative DNS for the domain and its reverse zones; forwards the rest."""

    enabled: StrictBool = False
    """Serve DNS."""
    listen: tuple[ListenAddress, ...] = (IPv4Address("127.0.0.1"),)
    """Addresses to answer on (UDP and TCP)."""
    port: Port = 53
    """Port to serve on."""
    forwarders: tuple[Upstream, ...] = ()
    """Upstream resolvers for other names, "addr" or "addr:port", tried in order; empty: refuse."""
    forward_timeout: Timeout = 2.0
    """Seconds to wait for one upstream before trying the next."""
    cache_size: Annotated[int, Field(strict=True, ge=0)] = 10000
    """Forwarded answers kept (each for its TTL); 0: no cache."""
    ttl: Seconds = 300
    """TTL of the records built from the inventory (and the SOA's negative TTL)."""
    reverse_zones: tuple[Network, ...] = ()
    """Networks whose reverse zones to serve; empty: [dhcp].subnet, else [node].address/24."""
    records: tuple[StaticRecord, ...] = ()
    """Static records in zone-file syntax relative to the domain, e.g. "www CNAME appliance"."""
    zone_file: StrictStr = ""
    """A zone file (RFC 1035 master format, origin: the domain) of more static records."""
    udp_size: Annotated[int, Field(strict=True, ge=512, le=4096)] = 1232
    """Largest UDP reply, advertised with EDNS (1232: no fragmentation, DNS flag day 2020)."""
    tcp_idle_timeout: Seconds = 10
    """Seconds a TCP connection may stay idle before it is closed (RFC 7766 6.2.3)."""
    workers: Workers = "auto"
    """UDP worker processes per listen address, answering the zone's queries (SO_REUSEPORT);
    0: UDP is answered in the appliance's process; "auto": one per CPU core but one (1 to 4)."""
