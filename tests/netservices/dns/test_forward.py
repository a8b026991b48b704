"""Forwarding names outside the zones: to dnsmasq or a second server of ours, on loopback only."""

import socket
import subprocess

from dnslib import DNSRecord

from netservices.dns import wire
from netservices.dns.forward import Forwarder, parse_upstream
from tests.netservices.dns.conftest import free_port, make_zones
from tests.netservices.dns.test_interop import dig, short

UPSTREAM_ZONE = {"ext1": ("192.0.2.10",)}


def upstream_server(serve):
    """A second server of ours, authoritative for example.org, as the upstream resolver."""
    from netservices.dns import service
    from netservices.dns.config import DnsConfig
    zones = service.authority(DnsConfig(ttl=60), domain="example.org", nameserver="ns")
    zones.set_host(_host("big", [f"192.0.2.{j}" for j in range(1, 81)]))
    zones.set_host(_host("ext1", ["192.0.2.10"]))
    return serve(zones)


def _host(name, addrs):
    from ipaddress import ip_address

    from netservices.dns.zone import Host
    return Host(name, tuple(ip_address(a) for a in addrs))


def test_names_outside_go_to_dnsmasq_and_are_cached(serve, dnsmasq):
    up = dnsmasq("ext1.example.org,192.0.2.10", extra=["--local-ttl=60"])
    ours = serve(forwarders=(f"127.0.0.1:{up}",))
    out = dig(ours.port, "ext1.example.org")
    assert "192.0.2.10" in out and " ra" in out.split("flags:")[1].split(";")[0]
    assert " aa" not in out.split("flags:")[1].split(";")[0]
    assert short(ours.port, "web1.rack.internal") == ["10.0.0.11"]  # the zone is still ours
    assert ours.server.responder.stats.forwarded == 1
    assert short(ours.port, "EXT1.example.org") == ["192.0.2.10"]  # from the cache
    assert ours.server.responder.stats.cache_hits == 1


def test_failover_past_a_dead_and_a_silent_upstream(serve, dnsmasq):
    up = dnsmasq("ext1.example.org,192.0.2.10")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers: a timeout
    with silent:
        ours = serve(forwarders=(f"127.0.0.1:{free_port()}", f"127.0.0.1:{silent.getsockname()[1]}",
                                 f"127.0.0.1:{up}"), forward_timeout=0.5)
        assert short(ours.port, "ext1.example.org") == ["192.0.2.10"]


def test_no_upstream_answers_servfail(serve):
    ours = serve(forwarders=(f"127.0.0.1:{free_port()}",), forward_timeout=0.5)
    assert "status: SERVFAIL" in dig(ours.port, "ext1.example.org")


def test_refused_without_forwarders(serve):
    assert "status: REFUSED" in dig(serve().port, "ext1.example.org")


async def test_truncated_upstream_answer_is_fetched_over_tcp(serve):
    up = upstream_server(serve)
    forwarder = Forwarder([("127.0.0.1", up.port)], udp_size=512, timeout=2)
    q = wire.parse_query(bytes(DNSRecord.question("big.example.org").pack()))
    answer = await forwarder.resolve(q)
    assert answer.rcode == wire.NOERROR and len(answer.answer) == 80
    assert up.server.responder.stats.received == 2  # the UDP try, then TCP


def test_negative_answers_are_cached_for_the_soa_minimum(serve):
    up = upstream_server(serve)
    ours = serve(make_zones(), forwarders=(f"127.0.0.1:{up.port}",))
    for _ in range(2):
        assert "status: NXDOMAIN" in dig(ours.port, "nope.example.org")
    assert ours.server.responder.stats.forwarded == 1 and ours.server.responder.stats.cache_hits == 1


def test_forwarder_spellings():
    assert parse_upstream("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_upstream("10.0.0.1:5353") == ("10.0.0.1", 5353)
    assert parse_upstream("[::1]:5353") == ("::1", 5353)
    assert parse_upstream("::1") == ("::1", 53)


def test_dnsmasq_is_only_on_loopback(dnsmasq):
    port = dnsmasq("ext1.example.org,192.0.2.10")
    listening = subprocess.run(["ss", "-lunH", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert listening.split()[3:4] == [f"127.0.0.1:{port}"] and len(listening.splitlines()) == 1
