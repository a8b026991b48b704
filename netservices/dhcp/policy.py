"""The protocol decisions: one client message in, the reply (or silence) out.

Pure: no sockets, no clock (`now` is passed in), no scapy. The `LeaseTable` is the
state it reads and changes; durable changes wait in `table.pending` for the server to
commit before the reply goes out.

The appliance is authoritative on its segments, like dnsmasq with dhcp-authoritative:
a client asking for an address it may not have gets a NAK at once rather than silence,
and a client asking for a free address of the pool (INIT-REBOOT or REBIND after we lost
track of it) gets it. Leases are keyed by MAC: PXE ROM, iPXE and the booted OS of one
machine send different client identifiers (or none), and must all get the one address.
"""

import logging
from ipaddress import IPv4Address

from netservices.dhcp import options as opt
from netservices.dhcp import pxe
from netservices.dhcp.config import DhcpConfig
from netservices.dhcp.inventory import Inventory
from netservices.dhcp.leases import Lease
from netservices.dhcp.table import LeaseTable, Pool
from netservices.dhcp.wire import ZERO, Reply, Request

log = logging.getLogger("netservices.dhcp.policy")

BROADCAST = ("255.255.255.255", 68)
CLIENT_PORT, SERVER_PORT = 68, 67


class Context:
    """Everything a decision reads besides the request: settings, leases, inventory."""

    def __init__(self, cfg: DhcpConfig, table: LeaseTable, inventory: Inventory):
        self.cfg, self.table, self.inventory = cfg, table, inventory


def answer(req: Request, ctx: Context, now: float) -> Reply | None:
    """Decide the reply to one client message; None means stay silent (RFC 2131 4.3)."""
    server = ctx.cfg.server_address or req.local
    if server is None or req.htype != 1 or len(req.chaddr) != 6:
        return None  # we do not know who we are, or not Ethernet: nothing sane to say
    if ctx.cfg.proxy:
        return _proxy(req, ctx, server)
    if req.port != ctx.cfg.port:
        return None
    pool = ctx.table.pool_for(req.giaddr if req.giaddr != ZERO else server)
    if pool is None:
        return None  # a relay of a segment we do not serve
    handler = _HANDLERS.get(req.msg_type)
    return handler(req, ctx, pool, server, now) if handler else None


def _discover(req, ctx, pool, server, now):
    ip = _choose(req, ctx, pool, now)
    if ip is None:
        log.warning("dhcp.pool_exhausted", extra={"fields": {"subnet": pool.subnet}})
        return None
    ctx.table.offer(req.mac, ip, now + ctx.cfg.offer_time)
    return _lease_reply(opt.OFFER, req, ctx, pool, server, ip)


def _choose(req, ctx, pool, now) -> IPv4Address | None:
    """RFC 2131 4.3.1: the reserved address, else the client's current or offered
    address, else the one it asks for, else a free one of the range."""
    reserved = _reservation(req.mac, ctx, pool, now)
    if reserved is not None:
        return reserved.ip
    lease = ctx.table.lease_of(req.mac)
    for ip in (lease.ip if lease else None, ctx.table.offer_of(req.mac, now), req.requested_ip):
        if ip is not None and pool.dynamic(ip) and _may_take(req.mac, ip, ctx, pool, now):
            return ip
    return ctx.table.pick(pool, lambda a: _may_take(req.mac, a, ctx, pool, now))


def _reservation(mac: str, ctx: Context, pool: Pool, now: float):
    """The client's reservation in this pool's subnet, if it can have it now.

    An address reserved while another client still held it stays with that client
    until its lease ends; meanwhile the reserved client is served from the range.
    """
    reserved = ctx.inventory.reservation(mac)
    if reserved is None or not _may_take(mac, reserved.ip, ctx, pool, now):
        return None
    return reserved


def _may_take(mac: str, ip: IPv4Address, ctx: Context, pool: Pool, now: float) -> bool:
    """Whether `mac` may hold `ip`: nobody else holds it, nor is it reserved for another."""
    if ip not in pool.subnet or ip in (pool.subnet.network_address, pool.subnet.broadcast_address):
        return False
    holder = ctx.table.holder(ip, now)
    if holder is not None and holder != mac:
        return False
    reserved_for = ctx.inventory.reserved_for(ip)
    if reserved_for is not None:
        return reserved_for == mac
    return pool.dynamic(ip)


def _request(req, ctx, pool, server, now):
    if req.server_id is not None and req.server_id != server:
        ctx.table.withdraw(req.mac)  # SELECTING another server's offer (RFC 2131 4.3.2)
        return None
    # SELECTING and INIT-REBOOT name the address in option 50; RENEWING/REBINDING in ciaddr.
    ip = req.requested_ip if req.requested_ip is not None else req.ciaddr
    if ip == ZERO:
        return None
    reserved = _reservation(req.mac, ctx, pool, now)
    if (reserved is not None and reserved.ip != ip) or not _may_take(req.mac, ip, ctx, pool, now):
        return _nak(req, server, "address not available")
    hostname = reserved.hostname if reserved is not None else ""
    ctx.table.bind(Lease(ip, req.mac, now + ctx.cfg.lease_time, hostname=hostname))
    return _lease_reply(opt.ACK, req, ctx, pool, server, ip)


def _decline(req, ctx, pool, server, now):
    """RFC 2131 4.3.3: the client found the address in use; keep it out of the pool."""
    if req.server_id in (None, server) and req.requested_ip is not None:
        lease = ctx.table.lease_of(req.mac)
        if lease is not None and lease.ip == req.requested_ip:
            ctx.table.decline(req.requested_ip, now)
    return None


def _release(req, ctx, pool, server, now):
    """RFC 2131 4.3.4: the client gives its address back; no reply."""
    ctx.table.release(req.mac, req.ciaddr, now)
    return None


def _inform(req, ctx, pool, server, now):
    """RFC 2131 4.3.5: configuration only, no lease, unicast to ciaddr."""
    if req.ciaddr == ZERO:
        return None
    reply = _lease_reply(opt.ACK, req, ctx, pool, server, ZERO)
    for code in (opt.LEASE_TIME, opt.RENEWAL, opt.REBINDING):
        reply.options.pop(code, None)
    return reply


_HANDLERS = {opt.DISCOVER: _discover, opt.REQUEST: _request, opt.DECLINE: _decline,
             opt.RELEASE: _release, opt.INFORM: _inform}


def _lease_reply(msg: int, req: Request, ctx: Context, pool: Pool, server: IPv4Address,
                 ip: IPv4Address) -> Reply:
    cfg = ctx.cfg
    reply = Reply(msg, req, BROADCAST, yiaddr=ip, ciaddr=req.ciaddr if msg == opt.ACK else ZERO)
    reply.options.update(_network_options(req, ctx, pool, server))
    _add_boot(reply, req, cfg, server)
    _route(reply, req)
    return reply


def _network_options(req: Request, ctx: Context, pool: Pool, server) -> dict[int, bytes]:
    cfg, lease_time = ctx.cfg, ctx.cfg.lease_time
    found = {
        opt.SERVER_ID: opt.ip(server), opt.LEASE_TIME: opt.u32(lease_time),
        opt.RENEWAL: opt.u32(lease_time // 2), opt.REBINDING: opt.u32(lease_time * 7 // 8),
        opt.SUBNET_MASK: opt.ip(pool.subnet.netmask),
        opt.BROADCAST_ADDR: opt.ip(pool.subnet.broadcast_address),
    }
    router = pool.router or (req.giaddr if req.giaddr != ZERO else None)
    if router is not None:
        found[opt.ROUTER] = opt.ip(router)
    if cfg.dns_servers:
        found[opt.DNS] = opt.ips(cfg.dns_servers)
    if cfg.ntp_servers:
        found[opt.NTP] = opt.ips(cfg.ntp_servers)
    if cfg.domain:
        found[opt.DOMAIN] = opt.text(cfg.domain)
    reserved = ctx.inventory.reservation(req.mac)
    if reserved is not None and reserved.hostname:
        found[opt.HOSTNAME] = opt.text(reserved.hostname)
    if req.relay_info is not None:
        found[opt.RELAY_AGENT] = req.relay_info  # RFC 3046 2.2: echoed unchanged
    return found


def _add_boot(reply: Reply, req: Request, cfg: DhcpConfig, server: IPv4Address,
              proxy: bool = False) -> None:
    next_server = cfg.next_server or server
    boot = pxe.boot(req, cfg, server, next_server, proxy=proxy)
    if boot is None:
        return
    reply.siaddr = next_server
    reply.file = boot.file.encode() if len(boot.file) < 128 else b""  # long URLs: option 67 only
    reply.options.update(boot.options)


def _route(reply: Reply, req: Request) -> None:
    """RFC 2131 4.1: where a reply goes."""
    if req.giaddr != ZERO:
        reply.dest = (str(req.giaddr), SERVER_PORT)
        if reply.msg_type == opt.NAK:
            reply.flags = req.flags | 0x8000  # the relay must broadcast a NAK
    elif reply.msg_type == opt.NAK:
        reply.dest = BROADCAST
    elif req.ciaddr != ZERO:
        reply.dest = (str(req.ciaddr), CLIENT_PORT)
    elif req.broadcast or reply.yiaddr == ZERO:
        reply.dest = BROADCAST
    else:
        reply.dest, reply.arp = (str(reply.yiaddr), CLIENT_PORT), True


def _nak(req: Request, server: IPv4Address, why: str) -> Reply:
    reply = Reply(opt.NAK, req, BROADCAST)
    reply.options = {opt.SERVER_ID: opt.ip(server), opt.MESSAGE: opt.text(why)}
    if req.relay_info is not None:
        reply.options[opt.RELAY_AGENT] = req.relay_info
    _route(reply, req)
    return reply


def _proxy(req: Request, ctx: Context, server: IPv4Address) -> Reply | None:
    """ProxyDHCP (PXE spec 2.1, as dnsmasq and pixiecore): boot information, no address.

    On port 67 a PXE client's DISCOVER gets an OFFER with yiaddr 0, broadcast; on the
    proxy port its REQUEST gets an ACK, unicast back to where it came from.
    """
    on_proxy_port = req.port == ctx.cfg.proxy_port
    wanted = opt.REQUEST if on_proxy_port else opt.DISCOVER
    if req.msg_type != wanted or not pxe.is_pxe(req):
        return None
    msg = opt.ACK if on_proxy_port else opt.OFFER
    reply = Reply(msg, req, BROADCAST, ciaddr=req.ciaddr if on_proxy_port else ZERO)
    reply.options[opt.SERVER_ID] = opt.ip(server)
    _add_boot(reply, req, ctx.cfg, server, proxy=True)
    if opt.BOOTFILE not in reply.options:
        return None
    if on_proxy_port:
        reply.dest = req.peer
    elif req.giaddr != ZERO:
        reply.dest = (str(req.giaddr), SERVER_PORT)
    return reply
