"""Zones: reverse zone names, live host changes, static records from config and zone file."""

from ipaddress import ip_address, ip_network

import pytest

from netservices.dns import wire
from netservices.dns.config import DnsConfig
from netservices.dns.service import authority
from netservices.dns.zone import Host, reverse_zone
from tests.netservices.dns.conftest import DATA, make_zones

REVERSE = {
    "/24": ("10.1.2.0/24", "2.1.10.in-addr.arpa."),
    "/16": ("10.1.0.0/16", "1.10.in-addr.arpa."),
    "/20 widens to /16": ("10.1.16.0/20", "1.10.in-addr.arpa."),
    "/64": ("fd00:1:2:3::/64", "3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa."),
}


@pytest.mark.parametrize("net,zone", REVERSE.values(), ids=REVERSE.keys())
def test_reverse_zone_names(net, zone):
    assert wire.text(reverse_zone(ip_network(net))) == zone


def answer(zones, name, qtype=wire.TYPE_A):
    return zones.lookup(wire.name(name), qtype)


def test_hosts_come_and_go_and_the_serial_moves():
    zones = make_zones()
    serial = zones.serial
    zones.set_host(Host("new1", (ip_address("10.0.0.50"),)))
    assert [str(rr.rdata) for rr in answer(zones, "new1.rack.internal").answer] == ["10.0.0.50"]
    assert [str(rr.rdata) for rr in answer(zones, "50.0.0.10.in-addr.arpa", wire.TYPE_PTR).answer] == \
        ["new1.rack.internal."]
    assert zones.remove_host("new1") and not zones.remove_host("new1")
    assert answer(zones, "new1.rack.internal").rcode == wire.NXDOMAIN
    assert answer(zones, "50.0.0.10.in-addr.arpa", wire.TYPE_PTR).rcode == wire.NXDOMAIN
    assert zones.serial == serial + 2


def test_changes_are_announced():
    zones, calls = make_zones(), []
    zones.subscribe(lambda: calls.append(1))
    zones.set_host(Host("x", ()))
    zones.remove_host("x")
    assert calls == [1, 1]


def test_an_unsubscribed_callback_is_not_called():
    zones, calls = make_zones(), []

    def note():
        calls.append(1)

    zones.subscribe(note)
    zones.set_host(Host("x", ()))
    zones.unsubscribe(note)
    zones.unsubscribe(note)  # twice: nothing happens
    zones.remove_host("x")
    assert calls == [1]


def test_address_outside_reverse_zones_gets_no_ptr():
    zones = make_zones(hosts={"far": ("192.168.9.9",)})
    assert answer(zones, "9.9.168.192.in-addr.arpa", wire.TYPE_PTR) is None  # not ours at all


def test_inventory_is_loaded_at_once():
    class Inventory:
        def hosts(self):
            return [Host(f"m{i}", (ip_address(f"10.0.0.{100 + i}"),)) for i in range(5)]

    zones = make_zones()
    serial = zones.serial
    zones.load(Inventory())
    assert "m4.rack.internal." in zones.names() and zones.serial == serial + 1


def test_zone_file_with_relative_names_and_srv():
    text = (DATA / "rack.zone").read_text()
    zones = authority(DnsConfig(), domain="rack.internal", nameserver="appliance", zone_text=text)
    srv = answer(zones, "_ldap._tcp.rack.internal", wire.TYPE_SRV).answer
    assert [str(rr.rdata) for rr in srv] == ["0 0 389 ldap.rack.internal."]  # origin kept
    assert [str(rr.rdata) for rr in answer(zones, "ldap.rack.internal").answer] == ["10.0.0.5"]
    assert [str(rr.rdata) for rr in answer(zones, "mail.rack.internal", wire.TYPE_MX).answer] == \
        ["10 ldap.rack.internal."]


def test_bad_zone_text_is_refused_naming_the_problem():
    with pytest.raises(wire.ZoneError):
        authority(DnsConfig(), domain="rack.internal", nameserver="a", zone_text="x 300 IN BOGUS 1")
