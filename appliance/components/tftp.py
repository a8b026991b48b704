"""The TFTP component: read-only boot files from `[tftp].root` on `[tftp].listen:port`.

What a client can read, first match wins: files rendered per request (`TftpComponent.
rendered`, e.g. per-MAC `pxelinux.cfg/01-aa-bb-…` menus, added by the boot logic), the
files under the root, then the boot loaders of the Debian packages ipxe, pxelinux and
syslinux-common under their usual names (`undionly.kpxe`, `ipxe.efi`, `pxelinux.0`, …).
"""

import logging
import os

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.runner import Component
from netservices.tftp.config import TftpConfig
from netservices.tftp.files import DEBIAN_LOADERS, Aliases, Chain, Directory, Rendered
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


@register("tftp")
def build(cfg: Config, runtime: Runtime) -> TftpComponent:
    return TftpComponent(cfg.tftp)
