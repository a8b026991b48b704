"""Boot scripts: what a machine that runs iPXE boots next, decided from the inventory.

`GET /boot/ipxe?mac=…` (the URL DHCP hands to iPXE) answers an iPXE script: an unknown
machine gets the enrollment image (kernel and initrd from /assets/enroll/, with the
appliance URL and the enrollment token on the kernel command line); a known machine
gets its next action — by default, boot from its local disk. Pure: the route looks the
machine up and passes it in.

Machines that run pxelinux instead (`[dhcp] bios_boot_file = "pxelinux.0"`) read
`pxelinux.cfg/01-<mac>` over TFTP: the same decision as a pxelinux config, whose kernel
and initrd come over TFTP too (`enroll/vmlinuz`, `enroll/initrd.img`).
"""

import re

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

CHAIN = """#!ipxe
chain http://{server}/boot/ipxe?mac=${{net0/mac}}
"""

ENROLL = """#!ipxe
echo PyLabs appliance: unknown machine {mac}, enrolling
kernel http://{server}/assets/enroll/vmlinuz initrd=initrd.img console=tty0 console=ttyS0,115200 \
  quiet appliance.url=http://{server} appliance.token={token} BOOTIF=01-{dashed}
initrd http://{server}/assets/enroll/initrd.img
boot || goto failed
:failed
echo PyLabs appliance: the enrollment image did not boot; retrying in 10 s
sleep 10
chain http://{server}/boot/ipxe?mac={mac}
"""

LOCAL = """#!ipxe
echo PyLabs appliance: {hostname} ({mac}) is known, booting from its local disk
sanboot --no-describe --drive 0x80 || exit
"""

# pxelinux paths are relative to the TFTP directory of pxelinux.0; IPAPPEND 2 appends
# BOOTIF=01-<mac> itself, in the form the enrollment image reads.
PXELINUX_ENROLL = """# PyLabs appliance: unknown machine {mac}, enrolling
DEFAULT enroll
PROMPT 0
TIMEOUT 0
LABEL enroll
  KERNEL enroll/vmlinuz
  INITRD enroll/initrd.img
  APPEND console=tty0 console=ttyS0,115200 quiet appliance.url=http://{server} appliance.token={token}
  IPAPPEND 2
"""

PXELINUX_LOCAL = """# PyLabs appliance: {hostname} ({mac}) is known, booting from its local disk
DEFAULT local
PROMPT 0
TIMEOUT 0
LABEL local
  LOCALBOOT 0
"""


def public_server(cfg) -> str:
    """host:port where the rack's machines reach the appliance over HTTP, for when no
    request says it: nginx's port when nginx fronts the app server (the node image, whose
    app server listens on loopback only), else the app server's own."""
    front = cfg.http.enabled and cfg.http.nginx
    host = cfg.node.address or (cfg.http.listen if front else cfg.appserver.listen)
    host = f"[{host}]" if host.version == 6 else str(host)
    return f"{host}:{cfg.http.port if front else cfg.appserver.port}"


def normalize_mac(text: str | None) -> str | None:
    """A MAC as lower-case colon-separated text, or None when it is not one."""
    mac = (text or "").strip().lower().replace("-", ":")
    return mac if MAC.match(mac) else None


def ipxe_script(server: str, mac: str | None, machine, token: str) -> str:
    """The script for `mac` (None: chain back with iPXE's own MAC); `machine` is the
    enrolled machine with that MAC, or None."""
    if mac is None:
        return CHAIN.format(server=server)
    if machine is None:
        return ENROLL.format(server=server, mac=mac, dashed=mac.replace(":", "-"), token=token)
    return LOCAL.format(mac=mac, hostname=machine.hostname or machine.guid)


def pxelinux_config(server: str, mac: str, machine, token: str) -> str:
    """The pxelinux config for `mac`: enroll when `machine` is None, else boot the local disk."""
    if machine is None:
        return PXELINUX_ENROLL.format(server=server, mac=mac, token=token)
    return PXELINUX_LOCAL.format(mac=mac, hostname=machine.hostname or machine.guid)
