"""Real clients against the server on 127.0.0.1: dig and kdig over UDP and TCP."""

import ipaddress
import socket
import subprocess

import pytest
from dnslib import DNSRecord

from netservices.dns.zone import Host
from tests.netservices.dns.conftest import make_zones, tool


def dig(port, *args, client="dig"):
    """The client's output (stdout, then stderr, where kdig reports errors)."""
    retry = "+tries=1" if client == "dig" else "+retry=0"
    cmd = [tool(client), "@127.0.0.1", "-p", str(port), "+time=5", retry, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    return done.stdout + done.stderr


def short(port, *args, client="dig"):
    retry = "+tries=1" if client == "dig" else "+retry=0"
    cmd = [tool(client), "@127.0.0.1", "-p", str(port), "+time=5", retry, "+short", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.split()


CASES = {
    "dig A over UDP": ("dig", ["web1.rack.internal"], "10.0.0.11"),
    "dig A over TCP": ("dig", ["+tcp", "web1.rack.internal"], "10.0.0.11"),
    "dig PTR": ("dig", ["-x", "10.0.0.11"], "web1.rack.internal."),
    "dig AAAA, no EDNS": ("dig", ["+noedns", "AAAA", "web1.rack.internal"], "fd00::11"),
    "dig SRV, bufsize 4096": ("dig", ["+bufsize=4096", "SRV", "_xmpp-client._tcp.rack.internal"],
                              "appliance.rack.internal."),
    "dig +norec": ("dig", ["+norec", "db1.rack.internal"], "10.0.0.12"),
    "kdig A over UDP": ("kdig", ["web1.rack.internal"], "10.0.0.11"),
    "kdig A over TCP": ("kdig", ["+tcp", "WEB1.rack.internal"], "10.0.0.11"),
    "kdig PTR v6": ("kdig", ["-x", "fd00::11"], "web1.rack.internal."),
    "kdig EDNS 512": ("kdig", ["+bufsize=512", "TXT", "note.rack.internal"], '"second'),
}


@pytest.mark.parametrize("client,args,expected", CASES.values(), ids=CASES.keys())
def test_clients_get_the_records(serve, client, args, expected):
    assert expected in short(serve().port, *args, client=client)


def test_dig_sees_an_authoritative_answer_with_edns(serve):
    out = dig(serve().port, "+norec", "+bufsize=1400", "web1.rack.internal")
    assert "status: NOERROR" in out and " aa" in out.split("flags:")[1].split(";")[0]
    assert "EDNS: version: 0, flags:; udp: 1232" in out


def test_nxdomain_with_soa(serve):
    out = dig(serve().port, "nope.rack.internal")
    assert "status: NXDOMAIN" in out and "AUTHORITY: 1" in out and "\tSOA\t" in out


def test_axfr_is_refused(serve):
    port = serve().port
    assert "Transfer failed" in dig(port, "AXFR", "rack.internal")
    assert "server replied with error 'REFUSED'" in dig(port, "AXFR", "rack.internal", client="kdig")


def test_truncated_over_udp_then_retried_over_tcp(serve):
    hosts = {"big": tuple(f"10.0.0.{i}" for i in range(1, 81))}
    port = serve(make_zones(hosts=hosts)).port
    out = dig(port, "+bufsize=512", "big.rack.internal")
    assert "Truncated, retrying in TCP mode" in out and "ANSWER: 80" in out
    udp_only = dig(port, "+bufsize=512", "+ignore", "big.rack.internal")
    assert " tc" in udp_only.split("flags:")[1].split(";")[0] and "ANSWER: 0" in udp_only
    assert "QUERY: 1," in udp_only and ";big.rack.internal.\t\tIN\tA" in udp_only


def test_several_queries_on_one_tcp_connection(serve):
    """RFC 7766 6.2.1: pipelined queries on one connection, each answered."""
    port = serve().port
    names = ["web1.rack.internal", "db1.rack.internal", "appliance.rack.internal"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        for i, name in enumerate(names):
            q = DNSRecord.question(name)
            q.header.id = i
            data = bytes(q.pack())
            conn.sendall(len(data).to_bytes(2, "big") + data)
        replies = {}
        for _ in names:
            size = int.from_bytes(_read(conn, 2), "big")
            reply = DNSRecord.parse(_read(conn, size))
            replies[reply.header.id] = str(reply.rr[0].rdata)
    assert replies == {0: "10.0.0.11", 1: "10.0.0.12", 2: "10.0.0.1"}
    out = dig(port, "+tcp", "+keepopen", "web1.rack.internal", "db1.rack.internal")
    assert out.count("status: NOERROR") == 2


def _read(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_idle_tcp_connection_is_closed(serve):
    port = serve(tcp_idle_timeout=1).port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(10) == b""  # closed by the server after 1 s idle


def test_live_change_seen_by_dig(serve):
    running = serve()
    assert short(running.port, "new1.rack.internal") == []
    running.call(running.zones.set_host, Host("new1", (ipaddress.ip_address("10.0.0.77"),)))
    assert short(running.port, "new1.rack.internal") == ["10.0.0.77"]
    assert short(running.port, "-x", "10.0.0.77") == ["new1.rack.internal."]
    running.call(running.zones.remove_host, "new1")
    assert "NXDOMAIN" in dig(running.port, "new1.rack.internal")


def test_garbage_then_service_goes_on(serve):
    port = serve().port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\x01\x02\x03", ("127.0.0.1", port))  # silence
        s.sendto(b"\x12\x34\x01\x00\x00\x01" + bytes(6), ("127.0.0.1", port))  # FORMERR
        reply = s.recv(512)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0xF == 1
    assert short(port, "web1.rack.internal") == ["10.0.0.11"]
