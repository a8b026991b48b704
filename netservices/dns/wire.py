"""The DNS wire format: read queries, build replies and records. The only user of dnslib.

Everything else in the package handles names as `Name` (a tuple of lowercased labels,
root last omitted) and records as opaque `Record` objects made here. dnslib's own
defects are handled here (see ../shared/LIBRARY-NOTES.md): `truncate()` drops the
question, so truncation is done by hand; zone text loses the origin of relative SRV
targets, so the zone parser re-applies it.
"""

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from dnslib import (
    AAAA,
    CLASS,
    EDNS0,
    NS,
    PTR,
    QTYPE,
    RR,
    SOA,
    SRV,
    A,
    DNSError,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
    ZoneParser,
)

# RFC 1035 4.1.1 and RFC 6891 6.1.3 response codes.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = range(6)
BADVERS = 16
# RFC 1035 3.2.2, RFC 3596, RFC 2782, RFC 6891, RFC 1995/5936 types used here.
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_MX, TYPE_TXT = 1, 2, 5, 6, 12, 15, 16
TYPE_AAAA, TYPE_SRV, TYPE_OPT, TYPE_IXFR, TYPE_AXFR, TYPE_ANY = 28, 33, 41, 251, 252, 255
CLASS_IN, CLASS_ANY = 1, 255
HEADER = 12
MIN_UDP = 512  # RFC 1035 4.2.1; also the floor of an advertised EDNS size (RFC 6891 6.2.5)
TCP_MAX = 65535

Name = tuple[bytes, ...]
Record = RR


class Malformed(Exception):
    """Bytes that are not a DNS message this server can read."""


class ZoneError(ValueError):
    """Zone text that does not parse; the message names the line's problem."""


@dataclass(frozen=True, slots=True)
class Edns:
    """The client's OPT record (RFC 6891 6.1.3)."""

    size: int
    do: bool
    version: int


@dataclass(frozen=True, slots=True)
class Query:
    """One parsed query: what the core needs to answer it."""

    id: int
    opcode: int
    rd: bool
    cd: bool
    qdcount: int
    label: DNSLabel  # the question name as sent, case kept
    qtype: int
    qclass: int
    edns: Edns | None

    @property
    def name(self) -> Name:
        return tuple(part.lower() for part in self.label.label)

    @property
    def name_length(self) -> int:
        """Bytes the question name takes on the wire, uncompressed."""
        return sum(len(part) + 1 for part in self.label.label) + 1


@dataclass(frozen=True, slots=True)
class Upstream:
    """An upstream resolver's answer, kept for the cache (sections without the OPT)."""

    rcode: int
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]


def name(text: str) -> Name:
    """`Name` of a presentation-format domain name ("web1.rack.internal" or with a dot)."""
    return tuple(part.lower() for part in DNSLabel(text).label)


def text(n: Name) -> str:
    return ".".join(part.decode(errors="replace") for part in n) + "."


def parse_query(data: bytes) -> Query:
    """Parse a query; Malformed when the body does not parse (RFC 1035 4.1)."""
    try:
        msg = DNSRecord.parse(data)
    except Exception as exc:  # dnslib raises DNSError, but also others on odd input
        raise Malformed(str(exc)) from None
    hdr = msg.header
    if hdr.q != 1:
        raise Malformed(f"{hdr.q} questions")  # RFC 9619: exactly one
    opts = [rr for rr in msg.ar if rr.rtype == TYPE_OPT]
    if len(opts) > 1 or (opts and opts[0].rname.label):
        raise Malformed("bad OPT record")  # RFC 6891 6.1.1
    edns = None
    if opts:
        ttl = opts[0].ttl
        edns = Edns(max(opts[0].rclass, MIN_UDP), bool(ttl & 0x8000), (ttl >> 16) & 0xFF)
    q = msg.questions[0]
    return Query(hdr.id, hdr.opcode, bool(hdr.rd), bool(hdr.cd), hdr.q, q.qname, q.qtype,
                 q.qclass, edns)


def header_reply(data: bytes, rcode: int) -> bytes:
    """A bare reply (no sections) to a query whose header is readable: FORMERR, SERVFAIL."""
    qid, flags = struct.unpack_from("!HH", data)
    flags = 0x8000 | (flags & 0x7900) | rcode  # QR, opcode and RD kept (RFC 1035 4.1.1)
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def reply(q: Query, rcode: int, answer=(), authority=(), additional=(), *, aa: bool, ra: bool,
          limit: int, udp_size: int) -> bytes:
    """The reply to `q`, at most `limit` bytes: drop additional data, then truncate.

    Truncation keeps the question and the OPT record and sets TC (RFC 2181 9, RFC 6891 7).
    """
    hdr = DNSHeader(id=q.id, qr=1, opcode=q.opcode, aa=int(aa), rd=int(q.rd), ra=int(ra),
                    rcode=rcode & 0xF)
    hdr.cd = int(q.cd)
    # Built with the name lowercased, so that compression (case-sensitive in dnslib) is the
    # same for every spelling; the question as sent is put back in `_with_question`.
    question = DNSQuestion(DNSLabel(list(q.name)), q.qtype, q.qclass)
    msg = DNSRecord(hdr, questions=[question], rr=list(answer), auth=list(authority),
                    ar=list(additional))
    opt = []
    if q.edns is not None:
        opt = [EDNS0(udp_len=udp_size, ext_rcode=rcode >> 4, flags="do" if q.edns.do else "")]
        msg.ar += opt
    data = msg.pack()
    if len(data) > limit and additional:
        msg.ar = opt
        data = msg.pack()
    if len(data) > limit:
        msg.rr, msg.auth, msg.ar = [], [], opt
        hdr.tc = 1
        data = msg.pack()
    return _with_question(bytes(data), q)


def _with_question(data: bytes, q: Query) -> bytes:
    """`data` with its question name spelt as the client spelt it (RFC 1034 3.1, 4035 6.1)."""
    sent = b"".join(bytes((len(part),)) + part for part in q.label.label) + b"\0"
    return data[:HEADER] + sent + data[HEADER + len(sent):]


def address_record(owner: Name, addr: IPv4Address | IPv6Address, ttl: int) -> Record:
    rtype, rdata = (TYPE_A, A(str(addr))) if addr.version == 4 else (TYPE_AAAA, AAAA(str(addr)))
    return RR(DNSLabel(list(owner)), rtype, CLASS_IN, ttl, rdata)


def ptr_record(owner: Name, target: Name, ttl: int) -> Record:
    return RR(DNSLabel(list(owner)), TYPE_PTR, CLASS_IN, ttl, PTR(DNSLabel(list(target))))


def ns_record(owner: Name, target: Name, ttl: int) -> Record:
    return RR(DNSLabel(list(owner)), TYPE_NS, CLASS_IN, ttl, NS(DNSLabel(list(target))))


def soa_record(owner: Name, mname: Name, rname: Name, serial: int, ttl: int) -> Record:
    # refresh, retry, expire, minimum (the negative TTL, RFC 2308 4)
    times = (3600, 600, 86400, ttl)
    rdata = SOA(DNSLabel(list(mname)), DNSLabel(list(rname)), (serial & 0xFFFFFFFF, *times))
    return RR(DNSLabel(list(owner)), TYPE_SOA, CLASS_IN, ttl, rdata)


def owner(rr: Record) -> Name:
    return tuple(part.lower() for part in rr.rname.label)


def rtype(rr: Record) -> int:
    return rr.rtype


def target(rr: Record) -> Name | None:
    """The name a CNAME, NS, PTR, MX or SRV record points at; None for others."""
    rd = rr.rdata
    label = getattr(rd, "target", None) if rr.rtype == TYPE_SRV else getattr(rd, "label", None)
    if rr.rtype == TYPE_MX:
        label = rd.label
    return tuple(part.lower() for part in label.label) if isinstance(label, DNSLabel) else None


def negative_ttl(rr: Record) -> int:
    """RFC 2308 5: the TTL of a negative answer is min(SOA TTL, SOA minimum)."""
    return min(rr.ttl, rr.rdata.times[-1]) if rr.rtype == TYPE_SOA else rr.ttl


def aged(rrs, seconds: int) -> list[Record]:
    """Copies of `rrs` with their TTLs lowered by `seconds` (a cached answer's age)."""
    return [RR(rr.rname, rr.rtype, rr.rclass, max(rr.ttl - seconds, 0), rr.rdata) for rr in rrs]


class _ZoneParser(ZoneParser):
    """dnslib's zone parser, with relative SRV targets completed with the origin."""

    def parse_rr(self, rr):
        fields = list(rr)
        result = super().parse_rr(rr)
        if result.rtype == TYPE_SRV and not fields[-1].endswith("."):
            result.rdata = SRV(*(int(v) for v in fields[-4:-1]), self.origin.add(fields[-1]))
        return result


def parse_zone(zone_text: str, origin: str, ttl: int) -> list[Record]:
    """Records of zone-file text (RFC 1035 5.1: $ORIGIN, $TTL, @, relative names)."""
    try:
        records = list(_ZoneParser(zone_text, origin=origin.rstrip(".") + ".", ttl=ttl))
    except (DNSError, ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ZoneError(str(exc) or type(exc).__name__) from None
    for rr in records:
        if rr.rclass != CLASS_IN:
            raise ZoneError(f"not class IN: {describe(rr)}")
    return records


def describe(rr: Record) -> str:
    return f"{rr.rname} {QTYPE.get(rr.rtype)} {CLASS.get(rr.rclass)} {rr.rdata}"


def upstream_query(q: Query, msg_id: int, udp_size: int) -> bytes:
    """The query to send upstream for `q`: recursion desired, EDNS, DO as the client's."""
    hdr = DNSHeader(id=msg_id, rd=1)
    hdr.cd = int(q.cd)
    msg = DNSRecord(hdr, questions=[DNSQuestion(q.label, q.qtype, q.qclass)])
    msg.add_ar(EDNS0(udp_len=udp_size, flags="do" if q.edns and q.edns.do else ""))
    return bytes(msg.pack())


def message_id(data: bytes) -> int | None:
    return struct.unpack_from("!H", data)[0] if len(data) >= HEADER else None


def truncated(data: bytes) -> bool:
    return len(data) >= HEADER and bool(data[2] & 0x02)


def parse_upstream(data: bytes, q: Query, msg_id: int) -> Upstream:
    """An upstream reply to the query made by `upstream_query`; Malformed if it is not one."""
    try:
        msg = DNSRecord.parse(data)
    except Exception as exc:
        raise Malformed(str(exc)) from None
    hdr = msg.header
    qs = msg.questions
    if hdr.id != msg_id or not hdr.qr or len(qs) != 1 or \
            (qs[0].qname.label and tuple(p.lower() for p in qs[0].qname.label) != q.name) or \
            qs[0].qtype != q.qtype or qs[0].qclass != q.qclass:
        raise Malformed("reply does not match the query")
    rcode = hdr.rcode
    additional = [rr for rr in msg.ar if rr.rtype != TYPE_OPT]
    for rr in msg.ar:
        if rr.rtype == TYPE_OPT:
            rcode |= (rr.ttl >> 24) << 4
    return Upstream(rcode, tuple(msg.rr), tuple(msg.auth), tuple(additional))
