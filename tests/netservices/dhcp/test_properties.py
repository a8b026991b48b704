"""Hypothesis on the core: whatever clients send, no address is held by two of them,
and no message makes the server raise."""

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from netservices.dhcp import wire
from netservices.dhcp.leases import MemoryLeaseStore
from netservices.dhcp.server import DhcpServer
from tests.netservices.dhcp.harness import BASE, SERVER, Harness
from tests.netservices.dhcp.packets import OVMF_PXE, QEMU_BIOS_IPXE, message

MACS = [f"52:54:00:00:00:{i:02x}" for i in range(6)]
ADDRESSES = ["10.0.0.100", "10.0.0.101", "10.0.0.102", "10.0.0.20", "10.0.0.50", "10.9.0.1", "0.0.0.0"]
KINDS = ["discover", "request", "release", "decline", "inform"]

step = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS),
    "mac": st.sampled_from(MACS),
    "ciaddr": st.sampled_from(ADDRESSES),
    "flags": st.sampled_from([0, 0x8000]),
    "options": st.lists(st.sampled_from([("requested_addr", a) for a in ADDRESSES[:-1]]
                                        + [("server_id", str(SERVER)), ("server_id", "10.0.0.9")]
                                        + QEMU_BIOS_IPXE[:3] + OVMF_PXE[:3]),
                        max_size=4, unique_by=lambda o: o[0]),
    "wait": st.sampled_from([0, 0, 10, 40, 4000]),
})


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_no_address_is_ever_held_by_two_clients(steps):
    h = Harness(range=["10.0.0.100", "10.0.0.102"],
                reservations=[{"mac": MACS[0], "ip": "10.0.0.20"}])
    granted: dict[str, tuple[str, float]] = {}  # address -> (mac, expires) from the ACKs sent
    for s in steps:
        h.now += s.pop("wait")
        kind = s.pop("kind")
        if kind == "release" and granted.get(s["ciaddr"], ("",))[0] == s["mac"]:
            del granted[s["ciaddr"]]  # given back: another client may have it now
        reply = h.send(kind, **s)
        if reply is None or reply["options"]["message-type"] != 5 or reply["yiaddr"] == "0.0.0.0":
            continue
        ip = reply["yiaddr"]
        holder = granted.get(ip)
        assert holder is None or holder[0] == s["mac"] or holder[1] <= h.now, (ip, holder, s)
        for other, (mac, _expires) in list(granted.items()):
            if mac == s["mac"] and other != ip:
                del granted[other]  # one address per MAC: it moved
        granted[ip] = (s["mac"], h.now + 3600)
        assert ip != "10.0.0.20" or s["mac"] == MACS[0], "reserved address to another MAC"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.builds(
    lambda kind, cut, junk: message(kind, options=QEMU_BIOS_IPXE)[:cut] + junk,
    st.sampled_from(KINDS), st.integers(0, 400), st.binary(max_size=40)))
def test_the_server_counts_garbage_and_never_raises(data):
    server = DhcpServer(_cfg(), MemoryLeaseStore(), _inventory())
    server.table, server.ctx = _state(server)
    server.handle(data, ("10.0.0.9", 68), SERVER, 67)
    s = server.stats
    assert s.received == 1 and s.errors == 0 and s.malformed in (0, 1)


def _cfg():
    from netservices.dhcp.config import DhcpConfig
    return DhcpConfig(**BASE)


def _inventory():
    from netservices.dhcp.inventory import StaticInventory
    return StaticInventory()


def _state(server):
    from netservices.dhcp import policy
    from netservices.dhcp.server import pools
    from netservices.dhcp.table import LeaseTable
    table = LeaseTable(pools(server.cfg))
    return table, policy.Context(server.cfg, table, _inventory())


def test_an_exception_in_the_core_drops_that_packet_only(monkeypatch):
    from netservices.dhcp import policy
    server = DhcpServer(_cfg(), MemoryLeaseStore(), _inventory())
    server.table, server.ctx = _state(server)
    real = policy.answer

    def flaky(req, ctx, now):
        if req.mac == MACS[1]:
            raise RuntimeError("bug")
        return real(req, ctx, now)

    monkeypatch.setattr(policy, "answer", flaky)
    assert server.handle(message("discover", MACS[1]), ("0.0.0.0", 68), SERVER, 67) is None
    reply = server.handle(message("discover", MACS[2]), ("0.0.0.0", 68), SERVER, 67)
    assert reply is not None and reply.yiaddr == IPv4Address("10.0.0.100")
    assert (server.stats.errors, server.stats.malformed) == (1, 0)
    assert wire.parse(message("discover")).mac == "52:54:00:12:34:56"
