"""The TFTP codec: packets it decodes, garbage it rejects (always as Malformed)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netservices.tftp import wire

GOOD = {
    "rrq": (b"\0\x01pxelinux.0\0octet\0", wire.Request(1, "pxelinux.0", "octet", {})),
    "rrq with options, names lower-cased": (
        b"\0\x01f\0OCTET\0BLKSIZE\x001468\0tsize\x000\0",
        wire.Request(1, "f", "octet", {"blksize": "1468", "tsize": "0"})),
    "wrq": (b"\0\x02up\0octet\0", wire.Request(2, "up", "octet", {})),
    "ack": (b"\0\x04\x01\x02", 0x0102),
    "ack with trailing bytes": (b"\0\x04\0\x07junk", 7),
    "error": (b"\0\x05\0\x08refused\0", wire.Error(8, "refused")),
    "error without message": (b"\0\x05\0\x01", wire.Error(1, "")),
    "data": (b"\0\x03\0\x01abc", wire.Other(3)),
}

MALFORMED = {
    "empty": b"",
    "one byte": b"\0",
    "opcode only": b"\0\x01",
    "opcode 0": b"\0\0abcd\0octet\0",
    "opcode 7": b"\0\x07abcd\0octet\0",
    "opcode 256+1": b"\x01\x01abc\0octet\0",
    "rrq without NULs": b"\0\x01pxelinux.0",
    "rrq without mode": b"\0\x01file\0",
    "rrq odd options": b"\0\x01f\0octet\0blksize\0",
    "rrq empty option value": b"\0\x01f\0octet\0blksize\0\0",
    "rrq non-ascii name": b"\0\x01\xff\xfe\0octet\0",
    "rrq non-ascii option": b"\0\x01f\0octet\0bl\xffk\x001\0",
}


@pytest.mark.parametrize("data,expected", GOOD.values(), ids=GOOD.keys())
def test_decodes(data, expected):
    assert wire.parse(data) == expected


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_rejects_garbage_as_malformed(data):
    with pytest.raises(wire.Malformed):
        wire.parse(data)


@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_malformed(data):
    try:
        wire.parse(data)
    except wire.Malformed:
        pass


@given(st.from_regex(r"[a-zA-Z0-9./_-]{1,60}", fullmatch=True),
       st.dictionaries(st.sampled_from(["blksize", "tsize", "timeout", "windowsize", "x"]),
                       st.from_regex(r"[0-9]{1,6}", fullmatch=True)))
def test_request_round_trip(name, options):
    assert wire.parse(wire.request(name, options)) == wire.Request(1, name, "octet", options)


def test_encodes_oack_error_and_data():
    assert wire.oack({"blksize": "1468", "tsize": "5"}) == b"\0\x06blksize\x001468\0tsize\x005\0"
    assert wire.error(2, "Access violation") == b"\0\x05\0\x02Access violation\0"
    assert wire.error(0, "Server busy") == b"\0\x05\0\0Server busy\0"
    assert wire.data_header(65536 + 3) == b"\0\x03\0\x03"
    assert wire.parse(wire.ack(70000)) == 70000 & 0xFFFF
