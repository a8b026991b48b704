"""The pure core: query bytes in, reply bytes out — what dig would show for each case."""

import struct

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from netservices.dns.core import Forward, Responder, fast_key, fast_reply
from tests.netservices.dns.conftest import make_zones


def query(name, qtype="A", *, edns=None, do=False, rd=True, qid=4242):
    q = DNSRecord.question(name, qtype)
    q.header.id, q.header.rd = qid, int(rd)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns, flags="do" if do else ""))
    return bytes(q.pack())


def ask(data, *, udp=True, forwarding=False, zones=None):
    out = Responder(zones or make_zones(), forwarding=forwarding).answer(data, udp=udp, now=0.0)
    return DNSRecord.parse(out) if isinstance(out, bytes) else out


def rrs(section):
    return sorted(f"{rr.rname} {QTYPE[rr.rtype]} {rr.rdata}" for rr in section)


# name, qtype -> (rcode, answer, authority types, additional)
AUTHORITATIVE = {
    "A": ("web1.rack.internal", "A", "NOERROR", ["web1.rack.internal. A 10.0.0.11"], [], []),
    "AAAA": ("web1.rack.internal", "AAAA", "NOERROR", ["web1.rack.internal. AAAA fd00::11"], [], []),
    "PTR v4": ("11.0.0.10.in-addr.arpa", "PTR", "NOERROR",
               ["11.0.0.10.in-addr.arpa. PTR web1.rack.internal."], [], []),
    "PTR v6": ("1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "PTR",
               "NOERROR", ["1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR web1.rack.internal."],
               [], []),
    "CNAME chased in zone": ("alias.rack.internal", "A", "NOERROR",
                             ["alias.rack.internal. CNAME www.rack.internal.",
                              "web1.rack.internal. A 10.0.0.11",
                              "www.rack.internal. CNAME web1.rack.internal."], [], []),
    "CNAME asked for": ("www.rack.internal", "CNAME", "NOERROR",
                        ["www.rack.internal. CNAME web1.rack.internal."], [], []),
    "CNAME out of zone": ("outside.rack.internal", "A", "NOERROR",
                          ["outside.rack.internal. CNAME www.example.org."], [], []),
    "TXT": ("note.rack.internal", "TXT", "NOERROR",
            ['note.rack.internal. TXT "hello world","second string"'], [], []),
    "SRV with glue": ("_xmpp-client._tcp.rack.internal", "SRV", "NOERROR",
                      ["_xmpp-client._tcp.rack.internal. SRV 0 0 5222 appliance.rack.internal."], [],
                      ["appliance.rack.internal. A 10.0.0.1"]),
    "SOA": ("rack.internal", "SOA", "NOERROR",
            ["rack.internal. SOA appliance.rack.internal. hostmaster.rack.internal. 102 3600 600 86400 300"],
            [], []),
    "NS with glue": ("rack.internal", "NS", "NOERROR", ["rack.internal. NS appliance.rack.internal."], [],
                     ["appliance.rack.internal. A 10.0.0.1"]),
    "reverse zone SOA": ("0.0.10.in-addr.arpa", "SOA", "NOERROR",
                         ["0.0.10.in-addr.arpa. SOA appliance.rack.internal. hostmaster.rack.internal. 102 3600 600 86400 300"],
                         [], []),
    "NXDOMAIN": ("nope.rack.internal", "A", "NXDOMAIN", [], ["SOA"], []),
    "NXDOMAIN reverse": ("99.0.0.10.in-addr.arpa", "PTR", "NXDOMAIN", [], ["SOA"], []),
    "NODATA": ("db1.rack.internal", "AAAA", "NOERROR", [], ["SOA"], []),
    "empty non-terminal is NODATA (RFC 8020)": ("_tcp.rack.internal", "A", "NOERROR", [], ["SOA"], []),
    "case-insensitive": ("WeB1.RACK.Internal", "A", "NOERROR", ["WeB1.RACK.Internal. A 10.0.0.11"], [], []),
}


@pytest.mark.parametrize("name,qtype,rcode,answer,authority,additional", AUTHORITATIVE.values(),
                         ids=AUTHORITATIVE.keys())
def test_authoritative_answers(name, qtype, rcode, answer, authority, additional):
    reply = ask(query(name, qtype))
    assert RCODE[reply.header.rcode] == rcode
    assert reply.header.aa == 1 and reply.header.qr == 1 and reply.header.id == 4242
    assert rrs(reply.rr) == answer
    assert [QTYPE[rr.rtype] for rr in reply.auth] == authority
    assert rrs(reply.ar) == additional


def test_question_case_is_kept():
    reply = ask(query("WeB1.RACK.Internal"))
    assert str(reply.q.qname) == "WeB1.RACK.Internal."


REFUSALS = {
    "outside the zones, no forwarding": (query("www.example.org"), "REFUSED"),
    "AXFR": (query("rack.internal", "AXFR"), "REFUSED"),
    "IXFR": (query("rack.internal", "IXFR"), "REFUSED"),
    "class CH": (bytes(DNSRecord.question("version.bind", "TXT", "CH").pack()), "REFUSED"),
    "opcode STATUS": (query("web1.rack.internal")[:2] + b"\x11\x00" + query("web1.rack.internal")[4:],
                      "NOTIMP"),
}


@pytest.mark.parametrize("data,rcode", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals(data, rcode):
    reply = ask(data)
    assert RCODE[reply.header.rcode] == rcode
    assert reply.header.aa == 0 and len(reply.questions) == 1 and not reply.rr


def test_forwarding_asks_the_shell_for_names_outside():
    out = Responder(make_zones(), forwarding=True).answer(query("www.example.org"), udp=True, now=0)
    assert isinstance(out, Forward) and str(out.query.label) == "www.example.org."


def test_edns_opt_is_echoed_with_our_size_and_do():
    reply = ask(query("web1.rack.internal", edns=4096, do=True))
    (opt,) = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    assert opt.rclass == 1232 and opt.ttl & 0x8000  # our UDP size, DO echoed (RFC 3225)


def test_no_opt_without_edns():
    assert not ask(query("web1.rack.internal")).ar


def test_edns_version_1_is_badvers():
    q = DNSRecord.question("web1.rack.internal")
    q.add_ar(EDNS0(udp_len=1232, version=1))
    reply = ask(bytes(q.pack()))
    (opt,) = reply.ar
    assert (opt.ttl >> 24) << 4 | reply.header.rcode == 16  # BADVERS, RFC 6891 6.1.3


def many_addresses():
    return make_zones(hosts={"big": tuple(f"10.0.0.{i}" for i in range(1, 61))})


TRUNCATION = {
    "UDP, no EDNS: 512 bytes": (dict(), True, True),
    "UDP, EDNS 512": (dict(edns=512), True, True),
    "UDP, EDNS 1232": (dict(edns=1232), True, False),
    "TCP never truncates": (dict(), False, False),
}


@pytest.mark.parametrize("opts,udp,truncated", TRUNCATION.values(), ids=TRUNCATION.keys())
def test_truncation_keeps_the_question(opts, udp, truncated):
    data = query("big.rack.internal", **opts)  # 60 A records: ~1000 bytes
    out = Responder(many_addresses()).answer(data, udp=udp, now=0)
    reply = DNSRecord.parse(out)
    assert reply.header.tc == truncated
    assert str(reply.q.qname) == "big.rack.internal."
    assert len(reply.rr) == (0 if truncated else 60)
    assert len(out) <= (opts.get("edns", 512) if udp else 65535) or not truncated
    if "edns" in opts:
        assert [rr.rtype for rr in reply.ar] == [QTYPE.OPT]


BAD_INPUT = {
    "empty": (b"", None),
    "short garbage": (b"\x01\x02\x03", None),
    "eleven bytes": (bytes(11), None),
    "a response (QR set): no reply loops": (b"\x12\x34\x81\x80" + bytes(8), None),
    "header only, qdcount 1": (b"\x12\x34\x01\x00\x00\x01" + bytes(6), "FORMERR"),
    "two questions": (query("a.rack.internal")[:5] + b"\x02" + query("a.rack.internal")[6:], "FORMERR"),
    "no question": (b"\x12\x34\x01\x00" + bytes(8), "FORMERR"),
    "name runs off the end": (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", "FORMERR"),
    "compression loop": (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
                         "FORMERR"),
}


@pytest.mark.parametrize("data,rcode", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input(data, rcode):
    responder = Responder(make_zones())
    out = responder.answer(data, udp=True, now=0)
    if rcode is None:
        assert out is None
    else:
        assert out[:2] == data[:2] and out[2] & 0x80 and RCODE[out[3] & 0xF] == rcode
    assert responder.stats.malformed == 1
    assert ask(query("web1.rack.internal")).rr  # and the next query is answered


def test_failure_inside_gives_servfail_and_serving_goes_on(monkeypatch):
    zones = make_zones()
    responder = Responder(zones)
    monkeypatch.setattr(zones, "lookup", lambda *a: 1 / 0)
    out = responder.answer(query("web1.rack.internal"), udp=True, now=0)
    assert struct.unpack("!H", out[:2])[0] == 4242 and RCODE[out[3] & 0xF] == "SERVFAIL"
    assert responder.stats.servfail == 1
    monkeypatch.undo()
    assert DNSRecord.parse(responder.answer(query("web1.rack.internal", qid=7), udp=True, now=0)).rr


SHAPES = {
    "plain": dict(),
    "no RD": dict(rd=False),
    "EDNS": dict(edns=1232),
    "EDNS + DO": dict(edns=4096, do=True),
    "NXDOMAIN": dict(name="zz.rack.internal"),
    "REFUSED": dict(name="www.example.org"),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_prebuilt_reply_equals_built_reply(shape):
    """The second query of a shape comes from the pre-built table: same bytes but id and case."""
    shape = dict(shape)
    name = shape.pop("name", "web1.rack.internal")
    responder = Responder(make_zones())
    first = responder.answer(query(name.upper(), qid=1, **shape), udp=True, now=0)
    table_size = len(responder._fast[True])
    second = responder.answer(query(name, qid=2, **shape), udp=True, now=0)
    built = Responder(make_zones()).answer(query(name, qid=2, **shape), udp=True, now=0)
    assert table_size == 1 and second == built and first[2:] != second[2:]
    assert first[:2] == b"\x00\x01" and second[:2] == b"\x00\x02"


def test_prebuilt_replies_follow_zone_changes():
    from ipaddress import ip_address

    from netservices.dns.zone import Host
    zones = make_zones()
    responder = Responder(zones)
    for _ in range(2):
        assert DNSRecord.parse(responder.answer(query("web1.rack.internal"), udp=True, now=0)).rr
    zones.set_host(Host("web1", (ip_address("10.0.0.99"),)))
    reply = DNSRecord.parse(responder.answer(query("web1.rack.internal"), udp=True, now=0))
    assert rrs(reply.rr) == ["web1.rack.internal. A 10.0.0.99"]
    zones.remove_host("web1")
    reply = DNSRecord.parse(responder.answer(query("web1.rack.internal"), udp=True, now=0))
    assert RCODE[reply.header.rcode] == "NXDOMAIN"


def test_a_reply_built_while_the_zones_change_is_not_kept():
    """A change made meanwhile (the inventory follower runs in a thread) must not leave the
    reply built from the old zones in the fresh table."""
    from ipaddress import ip_address

    from netservices.dns.zone import Host
    zones = make_zones()
    responder = Responder(zones)
    lookup = zones.lookup

    def lookup_then_change(name, qtype):
        found = lookup(name, qtype)
        zones.lookup = lookup
        zones.set_host(Host("web1", (ip_address("10.0.0.99"),)))
        return found

    zones.lookup = lookup_then_change
    first = DNSRecord.parse(responder.answer(query("web1.rack.internal"), udp=True, now=0))
    second = DNSRecord.parse(responder.answer(query("web1.rack.internal"), udp=True, now=0))
    assert rrs(first.rr) == ["web1.rack.internal. A 10.0.0.11"]
    assert rrs(second.rr) == ["web1.rack.internal. A 10.0.0.99"]


def test_entry_gives_what_a_worker_needs_to_answer_alike():
    responder = Responder(make_zones())
    asked = query("WEB1.rack.internal", edns=1232, qid=7)
    assert responder.entry(asked) is None  # nothing built yet
    built = responder.answer(asked, udp=True, now=0)
    key, entry = responder.entry(query("web1.rack.internal", edns=1232, qid=8))
    assert key == fast_key(asked)
    assert fast_reply(asked, entry) == built
    assert responder.entry(query("web1.rack.internal", qid=9)) is None  # another shape
    assert responder.entry(b"\x00\x01") is None
