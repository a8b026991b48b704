"""The DNS server's pure core: query bytes in, reply bytes (or silence, or "forward") out.

`Responder.answer(data, udp=..., now=...)` never raises and never does I/O:

- bytes shorter than a header, or a message with QR set, give None (silence);
- a header that parses with a body that does not gives FORMERR;
- names in the zones get an authoritative answer (AA, NXDOMAIN/NODATA with the SOA);
- other names give REFUSED, or — with forwarding — a cached answer or a `Forward`
  that the shell resolves upstream and hands back to `forwarded()`;
- any failure inside gives SERVFAIL, never silence.

Hot path: every authoritative reply is kept, as wire bytes, under a key made of the
query's bytes from the flags to the OPT header (question name lowercased), so the next
query of the same shape is answered by slicing: its id and its question (case kept)
around the stored header and sections. No dnslib work. The table is dropped whenever
the zones change, and bounded in size. `fast_key` and `fast_reply` spell that lookup
out; the UDP workers (`udpworker`) inline it over copies of the entries (`entry`).
"""

import logging
from dataclasses import dataclass

from netservices.dns import wire
from netservices.dns.cache import Cache
from netservices.dns.zone import Authority

log = logging.getLogger("netservices.dns")

FAST_TABLE_MAX = 200_000
_CACHEABLE = (wire.NOERROR, wire.NXDOMAIN, wire.REFUSED, wire.NOTIMP)


@dataclass
class Stats:
    """Counters of one server; exported as Prometheus metrics by `metrics`."""

    received: int = 0
    answered: int = 0
    malformed: int = 0
    servfail: int = 0
    forwarded: int = 0
    cache_hits: int = 0

    def __hash__(self) -> int:  # kept in a WeakSet by the metrics collector
        return id(self)


@dataclass(frozen=True, slots=True)
class Forward:
    """A query to resolve upstream; hand the result to `Responder.forwarded`."""

    query: wire.Query
    udp: bool


class Responder:
    """Answers queries from an `Authority`; see the module docstring."""

    def __init__(self, authority: Authority, *, forwarding: bool = False,
                 cache: Cache | None = None, udp_size: int = 1232):
        self.authority = authority
        self.forwarding = forwarding
        self.cache = cache if cache is not None else Cache(0)
        self.udp_size = udp_size
        self.stats = Stats()
        self._fast: tuple[dict, dict] = ({}, {})  # TCP, UDP
        authority.subscribe(self.invalidate)

    def invalidate(self) -> None:
        """Drop the pre-built replies (the zones changed)."""
        self._fast = ({}, {})

    def close(self) -> None:
        """Stop following the zones (a server that is done with this responder)."""
        self.authority.unsubscribe(self.invalidate)

    def answer(self, data: bytes, *, udp: bool, now: float) -> bytes | Forward | None:
        """The reply to one message; see the module docstring."""
        self.stats.received += 1
        try:
            qn = data.index(0, wire.HEADER)
            hit = self._fast[udp].get(data[2:qn + 1].lower() + data[qn + 1:qn + 16])
        except ValueError:
            hit = None
        if hit is not None and hit[0] == len(data):
            self.stats.answered += 1
            return data[:2] + hit[1] + data[wire.HEADER:qn + 5] + hit[2]
        return self._slow(data, udp, now)

    def entry(self, data: bytes) -> tuple[bytes, tuple] | None:
        """(key, entry) of the pre-built UDP reply kept for `data`'s shape, if there is one."""
        key = fast_key(data)
        hit = self._fast[1].get(key) if key is not None else None
        return (key, hit) if hit is not None and hit[0] == len(data) else None

    def forwarded(self, fwd: Forward, upstream: wire.Upstream | None, now: float) -> bytes:
        """The reply to a forwarded query, from the upstream answer (None: all failed)."""
        q = fwd.query
        try:
            if upstream is None:
                self.stats.servfail += 1
                return self._reply(q, fwd.udp, wire.SERVFAIL, aa=False)
            self.cache.put(_cache_key(q), upstream, _ttl(upstream), now)
            self.stats.answered += 1
            return self._upstream_reply(q, fwd.udp, upstream, 0)
        except Exception:
            log.exception("dns.forward_reply_failed")
            self.stats.servfail += 1
            return wire.header_reply(_header(q), wire.SERVFAIL)

    def _slow(self, data: bytes, udp: bool, now: float) -> bytes | Forward | None:
        # The table as it is now: should the zones change meanwhile (from another thread),
        # the reply goes into the table just dropped, never into the fresh one.
        table = self._fast[udp]
        if len(data) < wire.HEADER or data[2] & 0x80:
            self.stats.malformed += 1  # garbage, or a response: stay silent (no loops)
            return None
        try:
            q = wire.parse_query(data)
        except wire.Malformed as exc:
            log.debug("dns.malformed", extra={"fields": {"error": str(exc)}})
            self.stats.malformed += 1
            return wire.header_reply(data, wire.FORMERR)
        try:
            out = self._respond(q, data, udp, now, table)
        except Exception:
            log.exception("dns.answer_failed")
            self.stats.servfail += 1
            return wire.header_reply(data, wire.SERVFAIL)
        if not isinstance(out, Forward):
            self.stats.answered += 1
        return out

    def _respond(self, q: wire.Query, data: bytes, udp: bool, now: float,
                 table: dict) -> bytes | Forward:
        if q.opcode != 0:
            return _keep(table, data, q, self._reply(q, udp, wire.NOTIMP, aa=False))
        if q.edns is not None and q.edns.version > 0:
            return self._reply(q, udp, wire.BADVERS, aa=False)  # RFC 6891 6.1.3
        if q.qtype in (wire.TYPE_AXFR, wire.TYPE_IXFR) or q.qclass not in (wire.CLASS_IN,
                                                                            wire.CLASS_ANY):
            return _keep(table, data, q, self._reply(q, udp, wire.REFUSED, aa=False))
        found = self.authority.lookup(q.name, q.qtype)
        if found is not None:
            reply = wire.reply(q, found.rcode, found.answer, found.authority, found.additional,
                               aa=True, ra=self.forwarding, limit=self._limit(q, udp),
                               udp_size=self.udp_size)
            return _keep(table, data, q, reply)
        if not self.forwarding:  # not ours, and no one to ask
            return _keep(table, data, q, self._reply(q, udp, wire.REFUSED, aa=False))
        cached = self.cache.get(_cache_key(q), now)
        if cached is not None:
            self.stats.cache_hits += 1
            return self._upstream_reply(q, udp, cached[0], cached[1])
        self.stats.forwarded += 1
        return Forward(q, udp)

    def _upstream_reply(self, q: wire.Query, udp: bool, up: wire.Upstream, age: int) -> bytes:
        return wire.reply(q, up.rcode, wire.aged(up.answer, age), wire.aged(up.authority, age),
                          wire.aged(up.additional, age), aa=False, ra=True,
                          limit=self._limit(q, udp), udp_size=self.udp_size)

    def _reply(self, q: wire.Query, udp: bool, rcode: int, *, aa: bool) -> bytes:
        return wire.reply(q, rcode, aa=aa, ra=self.forwarding, limit=self._limit(q, udp),
                          udp_size=self.udp_size)

    def _limit(self, q: wire.Query, udp: bool) -> int:
        if not udp:
            return wire.TCP_MAX
        if q.edns is None:
            return wire.MIN_UDP  # RFC 1035 4.2.1
        return min(q.edns.size, self.udp_size)  # RFC 6891 6.2.5


def fast_key(data: bytes) -> bytes | None:
    """The fast-path key of a query: its bytes from the flags to the OPT header, the
    question name lowercased. None when there is no name end to find."""
    qn = data.find(0, wire.HEADER)
    return None if qn < 0 else data[2:qn + 1].lower() + data[qn + 1:qn + 16]


def fast_reply(data: bytes, entry: tuple) -> bytes | None:
    """The reply to `data` from the entry kept under its key; None if it does not fit."""
    if entry[0] != len(data):
        return None
    qn = data.index(0, wire.HEADER)
    return data[:2] + entry[1] + data[wire.HEADER:qn + 5] + entry[2]


def _keep(table: dict, data: bytes, q: wire.Query, reply: bytes) -> bytes:
    """Store `reply` for the fast path when the query has the plain shape it reads."""
    qn = wire.HEADER + q.name_length - 1
    if (reply[3] & 0xF) not in _CACHEABLE or (data[2] | data[3]) & 0x40:
        return reply  # lowercasing the key must never turn one header into another
    if data.find(0, wire.HEADER) != qn:
        return reply  # a zero byte inside a label: the fast path would misread it
    rest = len(data) - qn - 5
    if q.edns is None:
        plain = data[10:12] == b"\x00\x00" and rest == 0
    else:
        plain = data[10:12] == b"\x00\x01" and rest >= 11 and \
            rest == 11 + int.from_bytes(data[qn + 14:qn + 16], "big")
    if plain and data[6:10] == b"\x00\x00\x00\x00":
        if len(table) >= FAST_TABLE_MAX:
            table.clear()
        table[fast_key(data)] = (len(data), reply[2:wire.HEADER], reply[qn + 5:])
    return reply


def _cache_key(q: wire.Query) -> tuple:
    return q.name, q.qtype, q.qclass, bool(q.edns and q.edns.do)


def _ttl(up: wire.Upstream) -> int:
    """How long an upstream answer may be cached: its smallest TTL (RFC 2308 for negative)."""
    if up.rcode not in (wire.NOERROR, wire.NXDOMAIN):
        return 0
    if up.answer:
        return min(rr.ttl for rr in up.answer)
    return min((wire.negative_ttl(rr) for rr in up.authority if wire.rtype(rr) == wire.TYPE_SOA),
               default=0)


def _header(q: wire.Query) -> bytes:
    flags = (q.opcode << 11) | (0x100 if q.rd else 0)
    return q.id.to_bytes(2, "big") + flags.to_bytes(2, "big") + bytes(8)
