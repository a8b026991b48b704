"""Settings of the tftp service: the [tftp] table of the appliance config."""

from ipaddress import IPv4Address
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, ListenAddress, Port

Timeout = Annotated[float, Field(ge=0.05, le=255, allow_inf_nan=False)]


@dataclass(frozen=True, config=SECTION)
class TftpConfig:
    """Read-only TFTP for boot loaders (RFC 1350, 2347-2349, 7440); writes are always refused."""

    enabled: StrictBool = False
    """Serve TFTP."""
    listen: tuple[ListenAddress, ...] = (IPv4Address("127.0.0.1"),)
    """Addresses to answer on; each transfer's replies come from the address its request reached."""
    port: Port = 69
    """Port to serve on."""
    root: str = "/var/lib/appliance/tftp"
    """Directory served; nothing outside it is ever read (no "..", absolute paths or symlinks out)."""
    max_blksize: Annotated[StrictInt, Field(ge=512, le=65464)] = 1468
    """Largest block size granted (RFC 2348); 1468 fills a 1500-byte frame, raise it for jumbo frames."""
    max_windowsize: Annotated[StrictInt, Field(ge=1, le=65535)] = 64
    """Largest window granted (RFC 7440): blocks sent before waiting for an ACK."""
    timeout: Timeout = 1.0
    """Seconds before a first retransmission, unless the client asks (RFC 2349); doubles each time."""
    max_timeout: Timeout = 8.0
    """Longest wait between two retransmissions, in seconds."""
    retries: Annotated[StrictInt, Field(ge=1, le=100)] = 6
    """Retransmissions without an answer before a transfer is given up."""
    max_transfers: Annotated[StrictInt, Field(ge=1, le=100000)] = 500
    """Transfers served at once; further requests go unanswered (clients send them again)
    until one ends: a PXE ROM gives up its boot on an error, not on silence."""
    workers: Annotated[StrictInt, Field(ge=0, le=64)] = 0
    """Worker processes that run the transfers (0: one per CPU core, at most 8). Requests,
    paths and rendered files stay in the appliance process; blocks move in the workers."""
    busy_poll: Annotated[StrictInt, Field(ge=0, le=1000)] = 30
    """Microseconds a worker with transfers running polls for the next packet before it
    sleeps (0: never): a fast client's next ACK is then seen without a wake-up. A poll
    that finds nothing makes the worker skip the next 1, 3, 7, … polls (up to 1023), so
    that slow clients (a PXE ROM on a real link) cost no spinning."""
    segmentation_offload: StrictBool = False
    """Send each window (RFC 7440) in one system call with UDP segmentation offload: less
    CPU per block, but the client gets the whole window at once instead of working on its
    first blocks while the rest are sent (on loopback, windowsize 8: 0.8x the MB/s)."""
