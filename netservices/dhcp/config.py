"""Settings of the dhcp service: the [dhcp] table of the appliance config."""

import re
from ipaddress import IPv4Address
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, Interface, IPv4, IPv4Net, Port, SettingError

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def _mac(value: str) -> str:
    mac = value.lower().replace("-", ":")
    if not _MAC.fullmatch(mac):
        raise ValueError("is not a MAC address such as 52:54:00:12:34:56")
    return mac


def _url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("is not an http:// or https:// URL")
    return value


def _maybe_ipv4(value: Any) -> IPv4Address | None:
    if value is None or isinstance(value, IPv4Address):
        return value
    if not isinstance(value, str):
        raise ValueError("is not an IPv4 address (write it as a string)")
    try:
        return IPv4Address(value) if value else None
    except ValueError:
        raise ValueError("is not an IPv4 address") from None


Mac = Annotated[StrictStr, AfterValidator(_mac)]
MaybeIPv4 = Annotated[IPv4Address | None, PlainValidator(_maybe_ipv4),
                      PlainSerializer(lambda v: str(v) if v else "")]
Url = Annotated[StrictStr, AfterValidator(_url)]
BootFile = Annotated[StrictStr, Field(max_length=127)]


@dataclass(frozen=True, config=SECTION)
class Reservation:
    """A fixed address for one MAC, like dnsmasq's dhcp-host."""

    mac: Mac
    """The client's MAC address."""
    ip: IPv4
    """The address it always gets."""
    hostname: StrictStr = ""
    """Host name given to it (option 12); empty: none."""



@dataclass(frozen=True, config=SECTION)
class RelayPool:
    """A subnet behind a DHCP relay: requests whose giaddr is inside it draw from its range."""

    subnet: IPv4Net
    """The relayed segment, e.g. "10.1.0.0/24"."""
    first: IPv4
    """First address of its pool."""
    last: IPv4
    """Last address of its pool."""
    router: MaybeIPv4 = None
    """Its default gateway (option 3); "": the relay's giaddr."""


    @model_validator(mode="after")
    def _range_fits(self):
        if not (self.first in self.subnet and self.last in self.subnet):
            raise SettingError("first", f"pool is not inside subnet {self.subnet}")
        if self.first > self.last:
            raise SettingError("first", "is after the last")
        return self


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
    """Lease time in seconds (option 51); renewal (T1, 58) at half, rebinding (T2, 59) at 7/8."""
    port: Port = 67
    """UDP port to serve on; tests use a private one."""
    server_address: IPv4 | None = None
    """The address this server answers as (option 54); unset: the interface's own address."""
    dns_servers: tuple[IPv4, ...] = ()
    """DNS servers given to clients (option 6); empty: none."""
    ntp_servers: tuple[IPv4, ...] = ()
    """NTP servers given to clients (option 42); empty: none."""
    domain: StrictStr = ""
    """Domain name given to clients (option 15); empty: the appliance's [node].domain."""
    next_server: IPv4 | None = None
    """TFTP server of the boot files (siaddr, option 66); unset: this server's address."""
    bios_boot_file: BootFile = "undionly.kpxe"
    """Boot file for BIOS PXE clients (option 93 = 0)."""
    efi_boot_file: BootFile = "ipxe.efi"
    """Boot file for UEFI PXE clients (option 93 = 6, 7 or 9), e.g. "snponly.efi"."""
    http_boot_url: Url = "http://{server}/boot/ipxe.efi"
    """Boot URL for UEFI HTTP boot clients (option 93 = 16); {server} is this server's address."""
    ipxe_script_url: Url = "http://{server}/boot/ipxe?mac=${net0/mac}"
    """Boot script URL for clients already running iPXE (option 77 "iPXE"); iPXE expands ${…}."""
    ipxe_script: StrictBool = True
    """Give iPXE clients the script URL; false: the boot file for their architecture, as any PXE ROM
    gets (e.g. pxelinux.0 chained by an iPXE NIC ROM; never with undionly.kpxe, which would loop)."""
    proxy: StrictBool = False
    """ProxyDHCP beside another DHCP server: boot information only, to PXE clients, on 67 and 4011."""
    proxy_port: Port = 4011
    """UDP port of the PXE boot server requests in proxy mode."""
    router_advertisements: StrictBool = True
    """Answer IPv6 router solicitations (lifetime 0, no prefix): iPXE otherwise waits ~13 s a boot."""
    reservations: tuple[Reservation, ...] = ()
    """Fixed addresses by MAC, e.g. [{ mac = "52:54:00:12:34:56", ip = "10.0.0.20", hostname = "n1" }]."""
    relays: tuple[RelayPool, ...] = ()
    """Pools behind DHCP relays, e.g. [{ subnet = "10.1.0.0/24", first = "10.1.0.9", last = "10.1.0.99" }]."""
    lease_file: StrictStr = ""
    """Journal of the leases, kept across restarts; empty: STATE_DIR/dhcp.leases."""
    offer_time: Annotated[StrictInt, Field(ge=1)] = 30
    """Seconds an offered address stays held for the client before another may get it."""

    @model_validator(mode="after")
    def _segment_named(self):
        if self.enabled and not self.interface:
            raise SettingError("interface", "must be set when dhcp is enabled")
        if self.enabled and self.subnet is None:
            raise SettingError("subnet", "must be set when dhcp is enabled")
        return self._range_fits()._reservations_fit()

    def _range_fits(self):
        if self.range and len(self.range) != 2:
            raise SettingError("range", "must be two addresses: the first and the last of the pool")
        if self.range and self.range[0] > self.range[1]:
            raise SettingError("range", "first address is after the last")
        if self.range and self.subnet and not all(a in self.subnet for a in self.range):
            raise SettingError("range", f"is not inside subnet {self.subnet}")
        return self

    def _reservations_fit(self):
        for key, values in (("mac", [r.mac for r in self.reservations]),
                            ("ip", [r.ip for r in self.reservations])):
            twice = sorted({str(v) for v in values if values.count(v) > 1})
            if twice:
                raise SettingError("reservations", f"{key} {twice[0]} is reserved twice")
        subnets = [self.subnet, *(r.subnet for r in self.relays)] if self.subnet else []
        for res in self.reservations:
            if subnets and not any(res.ip in net for net in subnets):
                raise SettingError("reservations", f"{res.ip} is not inside a served subnet")
        return self

    def pool_bounds(self) -> tuple[IPv4Address, IPv4Address] | None:
        """First and last address of the local dynamic pool, or None without a range."""
        return (self.range[0], self.range[1]) if self.range else None
