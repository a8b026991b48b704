"""Settings of the tftp service: the [tftp] table of the appliance config."""

from ipaddress import IPv4Address

from pydantic import StrictBool
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, ListenAddress, Port


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
