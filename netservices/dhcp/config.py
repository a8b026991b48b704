"""Settings of the dhcp service: the [dhcp] table of the appliance config."""

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, model_validator
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, Interface, IPv4, IPv4Net, Port, SettingError


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
