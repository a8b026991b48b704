"""The SMB component: the shares of `[smb]` (install media for Windows and WinPE) over SMB2.

The server is `netservices.smb.server.SmbServer` (impacket's, with its defects fixed);
it runs in a thread of its own, and each client connection in another.
"""

import asyncio
import logging
import os

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.runner import Component
from netservices.smb.config import SmbConfig
from netservices.smb.server import SmbServer

log = logging.getLogger("appliance.smb")


class SmbComponent(Component):
    name = "smb"

    def __init__(self, cfg: SmbConfig):
        self.cfg = cfg
        self.server: SmbServer | None = None

    async def start(self) -> None:
        for i, share in enumerate(self.cfg.shares):
            if not os.path.isdir(share.path):
                raise FileNotFoundError(f"smb.shares[{i}].path: {share.path} is not a directory")
        self.server = SmbServer(self.cfg)
        host, port = self.server.address
        log.info("smb.listening", extra=fields(address=f"{host}:{port}",
                                               shares=",".join(s.name for s in self.cfg.shares)))

    async def serve(self) -> None:
        await asyncio.to_thread(self.server.serve)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)


@register("smb")
def build(cfg: Config, runtime: Runtime) -> SmbComponent:
    return SmbComponent(cfg.smb)
