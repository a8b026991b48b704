"""Hypothesis on the core: any bytes give a reply or silence, never an exception."""

from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netservices.dns.core import Forward, Responder
from tests.netservices.dns.conftest import make_zones

RESPONDER = Responder(make_zones(), forwarding=True)
VALID = bytes(DNSRecord.question("web1.rack.internal").pack())


def check(data: bytes, udp: bool = True) -> None:
    out = RESPONDER.answer(data, udp=udp, now=0.0)
    if out is None or isinstance(out, Forward):
        return
    assert len(out) >= 12 and out[:2] == data[:2] and out[2] & 0x80  # same id, QR set
    assert udp is False or len(out) <= 4096


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_any_bytes(data, udp):
    check(data, udp)


@settings(max_examples=1500)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(VALID)))
def test_mutated_queries(edits, cut):
    data = bytearray(VALID)
    for pos, value in edits:
        data[pos] = value
    check(bytes(data[:cut] if cut > 12 else data))


@settings(max_examples=300)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-", min_size=1, max_size=20),
       st.sampled_from(["A", "AAAA", "TXT", "SRV", "MX", "ANY"]), st.integers(0, 65535))
def test_answers_are_well_formed_dns(label, qtype, qid):
    q = DNSRecord.question(f"{label}.rack.internal", qtype)
    q.header.id = qid
    reply = DNSRecord.parse(RESPONDER.answer(bytes(q.pack()), udp=True, now=0.0))
    assert reply.header.id == qid and str(reply.q.qname) == f"{label}.rack.internal."
    assert reply.header.aa == 1 and reply.header.rcode in (0, 3)
