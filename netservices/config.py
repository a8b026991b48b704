"""Settings of the network services, one frozen dataclass per service.

These are plain data: the application loads them from its TOML file (`appliance.config`)
and hands each service its own table, the way smee gives each service its own config
struct. Field docstrings are the documentation `appliance config show` prints.

Validators raise `ValueError` with a phrase that follows the offending value, so that the
loader can report `dhcp.range[1]: "10.0.0.300" is not an IPv4 address`.
"""

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, PlainSerializer, PlainValidator
from pydantic import StrictBool, StrictInt, model_validator
from pydantic.dataclasses import dataclass

SECTION = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class SettingError(ValueError):
    """A problem with one key of a section, found by a check that spans several keys."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key


def _parser(kind: str, parse):
    def validate(value: Any):
        if not isinstance(value, str):
            raise ValueError(f"is not {kind} (write it as a string)")
        try:
            return parse(value)
        except ValueError:
            raise ValueError(f"is not {kind}") from None

    return PlainValidator(validate)


def _interface_name(value: str) -> str:
    # Linux: IFNAMSIZ is 16 with the NUL; no '/', no whitespace, not "." or "..".
    if value and (len(value) > 15 or value in (".", "..") or re.search(r"[/\s:]", value)):
        raise ValueError("is not a network interface name")
    return value


IPv4 = Annotated[IPv4Address, _parser("an IPv4 address", IPv4Address), PlainSerializer(str)]
IPv4Net = Annotated[
    IPv4Network,
    _parser("an IPv4 network such as 10.0.0.0/24", lambda v: IPv4Network(v, strict=True)),
    PlainSerializer(str),
]
ListenAddress = Annotated[
    IPv4Address | IPv6Address,
    _parser("an IP address", ipaddress.ip_address),
    PlainSerializer(str),
]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Interface = Annotated[str, Field(strict=True), AfterValidator(_interface_name)]
Seconds = Annotated[StrictInt, Field(ge=1)]


@dataclass(frozen=True, config=SECTION)
class DhcpConfig:
    """DHCPv4 and PXE for the rack segment."""

    enabled: StrictBool = False
    """Serve DHCP. Needs `interface` and `subnet`: DHCP never starts on a segment not named here."""
    interface: Interface = ""
    """The network interface of the rack segment, e.g. "eth1"."""
    subnet: IPv4Net | None = None
    """The rack segment, e.g. "10.0.0.0/24"."""
    range: tuple[IPv4, ...] = ()
    """First and last address of the dynamic pool, e.g. ["10.0.0.100", "10.0.0.200"]."""
    router: IPv4 | None = None
    """Default gateway given to clients (option 3); unset: none."""
    lease_time: Annotated[StrictInt, Field(ge=60)] = 3600
    """Lease time in seconds (option 51)."""
    port: Port = 67
    """UDP port to serve on; tests use a private one."""

    @model_validator(mode="after")
    def _segment_named(self):
        if self.enabled and not self.interface:
            raise SettingError("interface", "must be set when dhcp is enabled")
        if self.enabled and self.subnet is None:
            raise SettingError("subnet", "must be set when dhcp is enabled")
        return self._range_fits()

    def _range_fits(self):
        if self.range and len(self.range) != 2:
            raise SettingError("range", "must be two addresses: the first and the last of the pool")
        if self.range and self.range[0] > self.range[1]:
            raise SettingError("range", "first address is after the last")
        if self.range and self.subnet and not all(a in self.subnet for a in self.range):
            raise SettingError("range", f"is not inside subnet {self.subnet}")
        return self


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


@dataclass(frozen=True, config=SECTION)
class TftpConfig:
    """Read-only TFTP for first-stage boot loaders."""

    enabled: StrictBool = False
    """Serve TFTP."""
    listen: tuple[ListenAddress, ...] = (IPv4Address("127.0.0.1"),)
    """Addresses to answer on."""
    port: Port = 69
    """Port to serve on."""
    root: str = "/var/lib/appliance/tftp"
    """Directory served; nothing outside it is ever read."""


@dataclass(frozen=True, config=SECTION)
class SmbConfig:
    """Read-only SMB2 shares of install media."""

    enabled: StrictBool = False
    """Serve SMB."""
    listen: ListenAddress = IPv4Address("127.0.0.1")
    """Address to answer on."""
    port: Port = 445
    """Port to serve on."""
