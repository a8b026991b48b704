"""Putting the DNS server together from its settings: zones, core, forwarder, sockets."""

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

from netservices.dns import metrics, wire
from netservices.dns.cache import Cache
from netservices.dns.config import DnsConfig
from netservices.dns.core import Responder
from netservices.dns.forward import Forwarder, parse_upstream
from netservices.dns.server import DnsServer
from netservices.dns.workers import auto_count
from netservices.dns.zone import Authority, Host, Network


def authority(cfg: DnsConfig, *, domain: str, nameserver: str,
              addresses: Iterable[IPv4Address | IPv6Address] = (),
              reverse: Iterable[Network] = (), extra: Iterable[str] = (),
              zone_text: str = "", serial: int = 1) -> Authority:
    """The zones: `domain` with the appliance as `nameserver`, reverse zones, static records.

    `extra` are more records in zone-file syntax (the appliance's SRV records);
    `zone_text` is the content of the zone file. Raises wire.ZoneError on bad records.
    """
    origin = domain.rstrip(".") + "."
    static = wire.parse_zone("\n".join([*cfg.records, *extra]), origin, cfg.ttl)
    if zone_text:
        static += wire.parse_zone(zone_text, origin, cfg.ttl)
    return Authority(domain, Host(nameserver, tuple(addresses)),
                     reverse=cfg.reverse_zones or tuple(reverse), static=static, ttl=cfg.ttl,
                     serial=serial)


def server(cfg: DnsConfig, zones: Authority, *, port: int | None = None) -> DnsServer:
    """The server for `zones` on cfg.listen (and cfg.port, unless `port` is given)."""
    forwarding = bool(cfg.forwarders)
    responder = Responder(zones, forwarding=forwarding, cache=Cache(cfg.cache_size),
                          udp_size=cfg.udp_size)
    forwarder = None
    if forwarding:
        forwarder = Forwarder([parse_upstream(f) for f in cfg.forwarders],
                              timeout=cfg.forward_timeout, udp_size=cfg.udp_size)
    port = cfg.port if port is None else port
    workers = auto_count() if cfg.workers == "auto" else cfg.workers
    server = DnsServer(responder, [(str(a), port) for a in cfg.listen], forwarder=forwarder,
                       idle_timeout=cfg.tcp_idle_timeout, workers=workers)
    metrics.export(server.stats)
    return server
