"""The DNS component: the domain from [node], its reverse zones, forwarding per [dns].

The zone starts with the appliance itself (NAME.DOMAIN, its address, SRV records for
its own services) and the static records of the config and zone file. Machines come
from the inventory: `DnsComponent.zones` is the `Authority` whose `set_host` and
`remove_host` the appliance calls when a machine is enrolled or deleted (no restart),
and `load(records)` reads a whole `Records` inventory. The zones outlive restarts of
the component after a crash. `follow_dns_records` reads the store in worker threads;
its changes are applied in the event loop's thread (`_InLoop`), where the server reads
the zones, and reach the UDP worker processes from there ([dns].workers).
"""

import asyncio
import ipaddress
import logging
import time
from pathlib import Path

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.inventory import follow_dns_records
from appliance.log import fields
from appliance.runner import Component
from netservices.dns import service
from netservices.dns.server import DnsServer
from netservices.dns.wire import ZoneError
from netservices.dns.zone import Authority, Host

log = logging.getLogger("appliance.dns")


def own_records(cfg: Config) -> list[str]:
    """SRV records (RFC 2782) for the appliance's own services that are enabled."""
    records = []
    if cfg.xmpp.enabled:
        records.append(f"_xmpp-client._tcp SRV 0 0 {cfg.xmpp.port} {cfg.node.name}")
    return records


def reverse_networks(cfg: Config) -> list:
    """Reverse zones when [dns].reverse_zones is empty: the DHCP subnet, else address/24."""
    if getattr(cfg.dhcp, "subnet", None):
        return [cfg.dhcp.subnet]
    if cfg.node.address is not None:
        return [ipaddress.ip_network(f"{cfg.node.address}/24", strict=False)]
    return []


def zones(cfg: Config) -> Authority:
    """The zones of this appliance (see the module docstring); raises on a bad zone file."""
    zone_text = Path(cfg.dns.zone_file).read_text() if cfg.dns.zone_file else ""
    addresses = [cfg.node.address] if cfg.node.address is not None else []
    try:
        return service.authority(cfg.dns, domain=cfg.node.domain, nameserver=cfg.node.name,
                                 addresses=addresses, reverse=reverse_networks(cfg),
                                 extra=own_records(cfg), zone_text=zone_text,
                                 serial=int(time.time()))
    except ZoneError as exc:
        raise ZoneError(f"zone file {cfg.dns.zone_file}: {exc}") from None


class _InLoop:
    """The zones as follow_dns_records changes them, from any thread: each change is made
    in `loop`'s thread, in the order it came."""

    def __init__(self, zones: Authority, loop: asyncio.AbstractEventLoop):
        self.zones, self.loop = zones, loop

    def set_host(self, host: Host) -> None:
        self.loop.call_soon_threadsafe(self.zones.set_host, host)

    def remove_host(self, name: str) -> None:
        self.loop.call_soon_threadsafe(self.zones.remove_host, name)


class DnsComponent(Component):
    name = "dns"

    def __init__(self, cfg: Config, runtime: Runtime | None = None):
        self.cfg, self.runtime = cfg, runtime
        self.zones: Authority | None = None  # built at the first start, kept after
        self._server: DnsServer | None = None

    @property
    def server(self) -> DnsServer | None:
        """The running server (its UDP workers, counters), None before the first start."""
        return self._server

    async def start(self) -> None:
        if self.zones is None:
            self.zones = zones(self.cfg)
        self._server = service.server(self.cfg.dns, self.zones)
        self._server.open()
        log.info("dns.listening", extra=fields(
            addresses=",".join(f"{h}:{p}" for h, p in self._server.bound()),
            names=len(self.zones.names()), forwarders=",".join(self.cfg.dns.forwarders),
            udp_workers=self._server.workers))

    async def serve(self) -> None:
        store = self.runtime.store if self.runtime else None
        if store is None:  # no OSIS: the config's records only
            await self._server.serve()
            return
        tasks = [asyncio.create_task(self._server.serve()),
                 asyncio.create_task(follow_dns_records(
                     store, _InLoop(self.zones, asyncio.get_running_loop())))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # a failure of either is a crash of the component

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()


@register("dns")
def build(cfg: Config, runtime: Runtime) -> DnsComponent:
    return DnsComponent(cfg, runtime)
