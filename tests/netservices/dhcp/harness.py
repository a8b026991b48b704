"""The DHCP core driven in-process: messages in as bytes, replies out decoded, a fake clock."""

from ipaddress import IPv4Address

from netservices.dhcp import policy, wire
from netservices.dhcp.config import DhcpConfig, Reservation
from netservices.dhcp.inventory import StaticInventory
from netservices.dhcp.server import pools
from netservices.dhcp.table import LeaseTable
from tests.netservices.dhcp.packets import decode, message

SERVER = IPv4Address("10.0.0.2")
BASE = {"enabled": True, "interface": "eth0", "subnet": "10.0.0.0/24",
        "range": ["10.0.0.100", "10.0.0.110"], "router": "10.0.0.1",
        "dns_servers": ["10.0.0.2"], "ntp_servers": ["10.0.0.3"], "domain": "rack.internal"}


class Harness:
    """One server's state; `send` runs a message through parse, policy and encode."""

    def __init__(self, **overrides):
        self.cfg = DhcpConfig(**{**BASE, **overrides})
        self.table = LeaseTable(pools(self.cfg))
        self.ctx = policy.Context(self.cfg, self.table,
                                  StaticInventory(Reservation(**r) for r in overrides.get("reservations", ())))
        self.now = 1_000_000.0
        self.committed = []

    def reply(self, kind: str, *, port: int = 67, peer=("0.0.0.0", 68), **kw) -> wire.Reply | None:
        req = wire.parse(message(kind, **kw), peer=peer, local=SERVER, port=port)
        reply = policy.answer(req, self.ctx, self.now)
        self.committed += self.table.take_pending()
        return reply

    def send(self, kind: str, **kw) -> dict | None:
        """The decoded reply plus `dest`/`arp`, or None for silence."""
        reply = self.reply(kind, **kw)
        if reply is None:
            return None
        return {**decode(wire.encode(reply)), "dest": reply.dest, "arp": reply.arp}

    def lease(self, mac: str = "52:54:00:12:34:56", **kw) -> str:
        """DISCOVER + REQUEST; the address ACKed."""
        offer = self.send("discover", mac=mac, **kw)
        ack = self.send("request", mac=mac, options=[("server_id", str(SERVER)),
                                                     ("requested_addr", offer["yiaddr"])])
        assert ack["options"]["message-type"] == 5, ack
        return ack["yiaddr"]
