"""PXE boot information: which boot file a client gets, by architecture and firmware.

RFC 4578 option 93 names the client's architecture; a client already running iPXE says
so in option 77. The answer is the file field plus options 60/66/67 (and 43, 175) that
PXE ROMs and iPXE read.
"""

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netservices.dhcp import options as opt
from netservices.dhcp.config import DhcpConfig
from netservices.dhcp.wire import Request

ARCH_BIOS = 0
ARCH_EFI = (6, 7, 9)  # IA32, x64, and x64 as some firmware reports it (RFC 4578 / IANA)
ARCH_EFI_HTTP = 16  # x64 UEFI HTTP boot

# Option 43 with PXE_DISCOVERY_CONTROL (sub-option 6) = 8: boot the file in this reply,
# skip boot server discovery. Legacy PXE ROMs otherwise wait for a boot server menu.
_PXE_VENDOR = opt.sub(6, b"\x08") + b"\xff"
# Option 175 sub-option 176 = 1: iPXE need not wait ~2 s for ProxyDHCP offers.
_IPXE_NO_PROXY_WAIT = opt.sub(opt.IPXE_NO_PXEDHCP, b"\x01")


@dataclass
class Boot:
    """What to put in a reply for a booting client."""

    file: str
    options: dict[int, bytes] = field(default_factory=dict)


def is_pxe(req: Request) -> bool:
    """PXE ROMs, UEFI HTTP boot and iPXE identify themselves by vendor class or user class."""
    return req.vendor_class.startswith((b"PXEClient", b"HTTPClient")) or is_ipxe(req)


def is_ipxe(req: Request) -> bool:
    # iPXE sends 77 = "iPXE" raw, not as an RFC 3004 length-prefixed list; accept both.
    return req.user_class in (b"iPXE", b"\x04iPXE")


def _url(template: str, server: IPv4Address) -> str:
    return template.replace("{server}", str(server))


def boot_file(req: Request, cfg: DhcpConfig, server: IPv4Address) -> str | None:
    """The file (or URL) this client should boot, or None for an unknown architecture."""
    if is_ipxe(req) and cfg.ipxe_script:
        return _url(cfg.ipxe_script_url, server)
    if req.arch == ARCH_EFI_HTTP or req.vendor_class.startswith(b"HTTPClient"):
        return _url(cfg.http_boot_url, server)
    if req.arch is None or req.arch == ARCH_BIOS:
        return cfg.bios_boot_file
    if req.arch in ARCH_EFI:
        return cfg.efi_boot_file
    return None


def boot(req: Request, cfg: DhcpConfig, server: IPv4Address, next_server: IPv4Address,
         *, proxy: bool = False) -> Boot | None:
    """Boot information for a PXE client, or None when it is not one (or we know no file)."""
    if not is_pxe(req):
        return None
    file = boot_file(req, cfg, server)
    if file is None:
        return None
    options = {opt.TFTP_SERVER: opt.text(str(next_server)), opt.BOOTFILE: opt.text(file)}
    if req.arch == ARCH_EFI_HTTP or req.vendor_class.startswith(b"HTTPClient"):
        options[opt.VENDOR_CLASS] = b"HTTPClient"  # UEFI HTTP boot ignores offers without it
    elif req.vendor_class.startswith(b"PXEClient"):
        options[opt.VENDOR_CLASS] = b"PXEClient"
        options[opt.VENDOR_OPTS] = _PXE_VENDOR
    if is_ipxe(req) and not proxy:
        options[opt.IPXE_ENCAP] = _IPXE_NO_PROXY_WAIT
    return Boot(file, options)
