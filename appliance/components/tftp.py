"""The TFTP component: read-only boot files from `[tftp].root` on `[tftp].listen:port`.

What a client can read, first match wins: files rendered per request (`TftpComponent.
rendered`, e.g. per-MAC `pxelinux.cfg/01-aa-bb-…` menus, added by the boot logic), the
files under the root, then the boot loaders of the Debian packages ipxe, pxelinux and
syslinux-common under their usual names (`undionly.kpxe`, `ipxe.efi`, `pxelinux.0`, …).

For pxelinux (`[dhcp] bios_boot_file = "pxelinux.0"`) it renders `pxelinux.cfg/01-<mac>`
from the inventory (appliance.boot.pxelinux_config: enroll, or boot the local disk) and
serves the enrollment image's kernel and initrd from `[http].root/enroll/` as
`enroll/vmlinuz` and `enroll/initrd.img`.

Requests, path checks and rendering happen in the appliance process (renderers read the
inventory here); the blocks move in `[tftp].workers` worker processes that the server
starts in `start()` and stops in `stop()` (netservices.tftp.pool).
"""

import logging
import os
from pathlib import Path

from appliance import boot
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.inventory import find_machine
from appliance.log import fields
from appliance.osis.kv import StoreError
from appliance.runner import Component
from appliance.services import store_of
from netservices.tftp.config import TftpConfig
from netservices.tftp.files import DEBIAN_LOADERS, Aliases, Chain, Directory, Refused, Rendered
from netservices.tftp.server import TftpServer

log = logging.getLogger("appliance.tftp")


class TftpComponent(Component):
    name = "tftp"

    def __init__(self, cfg: TftpConfig):
        self.cfg = cfg
        self.rendered = Rendered()
        self.server: TftpServer | None = None

    async def start(self) -> None:
        if not os.path.isdir(self.cfg.root):
            raise FileNotFoundError(f"tftp.root: {self.cfg.root} is not a directory")
        files = Chain(self.rendered, Directory(self.cfg.root), Aliases(DEBIAN_LOADERS))
        self.server = TftpServer(self.cfg, files)
        await self.server.start()
        for address in self.server.addresses:
            log.info("tftp.listening", extra=fields(address=f"{address[0]}:{address[1]}",
                                                    root=self.cfg.root))

    async def serve(self) -> None:
        await self.server.serve()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def add_pxelinux(rendered: Rendered, cfg: Config, runtime: Runtime) -> None:
    """Per-MAC pxelinux configs from the inventory, and the enrollment kernel and initrd."""
    server = boot.public_server(cfg)
    enroll = Path(cfg.http.root) / "enroll"

    def config(client, mac: str) -> bytes:
        mac = boot.normalize_mac(mac)
        try:
            found = find_machine(store_of(runtime)(), "mac", mac)
        except StoreError as exc:
            log.error("boot.unavailable", extra=fields(mac=mac, error=exc))
            raise Refused("the object store is unavailable") from None
        machine = found.obj if found else None
        log.info("boot.script", extra=fields(mac=mac, known=machine is not None, loader="pxelinux"))
        return boot.pxelinux_config(server, mac, machine, cfg.appserver.enroll_token).encode()

    rendered.add(r"pxelinux\.cfg/01-(?P<mac>[0-9a-f]{2}(?:-[0-9a-f]{2}){5})", config)
    rendered.add(r"enroll/(?P<name>vmlinuz|initrd\.img)",
                 lambda client, name: Aliases({name: str(enroll / name)}).open(name, client))


@register("tftp")
def build(cfg: Config, runtime: Runtime) -> TftpComponent:
    component = TftpComponent(cfg.tftp)
    add_pxelinux(component.rendered, cfg, runtime)
    return component
