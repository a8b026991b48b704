"""Settings of the dns service: the [dns] table of the appliance config."""

from ipaddress import IPv4Address

from pydantic import StrictBool
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, ListenAddress, Port, Seconds


@dataclass(frozen=True, config=SECTION)
class DnsConfig:
    """Authoritative DNS for the domain and its reverse zones; forwards the rest."""

    enabled: StrictBool = False
    """Serve DNS."""
    listen: tuple[ListenAddress, ...] = (IPv4Address("127.0.0.1"),)
    """Addresses to answer on (UDP and TCP)."""
    port: Port = 53
    """Port to serve on."""
    forwarders: tuple[ListenAddress, ...] = ()
    """Upstream resolvers for names outside the zones; empty: refuse them."""
    ttl: Seconds = 300
    """TTL of the records built from the inventory."""
