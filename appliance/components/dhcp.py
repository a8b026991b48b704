"""The dhcp component: netservices' DHCP server (and router advertiser) on `[dhcp].interface`.

It maps the appliance's config onto the server: the domain defaults to `[node].domain`,
the server's own address to `[node].address`, the lease journal lives in
`[node].state_dir`, and reservations come from `[dhcp].reservations` (enrollment will
plug an OSIS-backed inventory and lease store in here through the same interfaces).
"""

import logging
import os

from pydantic import TypeAdapter

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.inventory import MachineReservations
from appliance.log import fields
from appliance.runner import Component
from netservices.dhcp.config import DhcpConfig
from netservices.dhcp.inventory import StaticInventory
from netservices.dhcp.leases import JournalLeaseStore
from netservices.dhcp.ra import RouterAdvertiser
from netservices.dhcp.server import DhcpServer

log = logging.getLogger("appliance.dhcp")
_ADAPTER = TypeAdapter(DhcpConfig)


def server_config(cfg: Config) -> DhcpConfig:
    """`[dhcp]` with the defaults it takes from `[node]` filled in."""
    data = _ADAPTER.dump_python(cfg.dhcp, mode="json", exclude_none=True)
    data["domain"] = data["domain"] or cfg.node.domain
    data["lease_file"] = data["lease_file"] or os.path.join(cfg.node.state_dir, "dhcp.leases")
    if "server_address" not in data and cfg.node.address is not None:
        data["server_address"] = str(cfg.node.address)
    return _ADAPTER.validate_python(data)


class Dhcp(Component):
    name = "dhcp"

    def __init__(self, cfg: DhcpConfig, runtime: Runtime | None = None):
        self.cfg, self.runtime = cfg, runtime
        self._server: DhcpServer | None = None
        self._store: JournalLeaseStore | None = None
        self._ra: RouterAdvertiser | None = None

    async def start(self) -> None:
        self._store = JournalLeaseStore(self.cfg.lease_file)
        inventory = MachineReservations(StaticInventory(self.cfg.reservations),
                                        lambda: self.runtime.store if self.runtime else None)
        self._server = DhcpServer(self.cfg, self._store, inventory)
        try:
            await self._server.start()
        except BaseException:
            await self.stop()
            raise
        if self.cfg.router_advertisements:
            self._start_ra()
        log.info("dhcp.started", extra=fields(lease_file=self.cfg.lease_file,
                                              router_advertisements=self._ra is not None))

    def _start_ra(self) -> None:
        ra = RouterAdvertiser(self.cfg.interface)
        try:
            ra.start()
        except OSError as exc:  # e.g. IPv6 disabled on the interface: DHCP serves anyway
            log.warning("dhcp.ra_unavailable", extra=fields(interface=self.cfg.interface, error=exc))
            return
        self._ra = ra

    async def serve(self) -> None:
        await self._server.serve()

    async def stop(self) -> None:
        if self._ra is not None:
            self._ra.stop()
            self._ra = None
        if self._server is not None:
            await self._server.stop()
        if self._store is not None:
            self._store.close()
            self._store = None


@register("dhcp")
def build(cfg: Config, runtime: Runtime) -> Dhcp:
    return Dhcp(server_config(cfg), runtime)
