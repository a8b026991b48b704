"""Settings of the smb service: the [smb] table of the appliance config."""

from ipaddress import IPv4Address

from pydantic import StrictBool
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, ListenAddress, Port


@dataclass(frozen=True, config=SECTION)
class SmbConfig:
    """Read-only SMB2 shares of install media."""

    enabled: StrictBool = False
    """Serve SMB."""
    listen: ListenAddress = IPv4Address("127.0.0.1")
    """Address to answer on."""
    port: Port = 445
    """Port to serve on."""
