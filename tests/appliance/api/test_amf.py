"""The AMF codec against the byte layouts of the AMF0 and AMF3 specifications."""

import datetime
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api import amf
from appliance.api.amf import UNDEFINED, AmfError, Envelope, Message


def amf3(data: bytes):
    """Decode one AMF3 value the way the envelope does (after marker 0x11)."""
    env = amf.decode_envelope(b"\x00\x03\x00\x00\x00\x01" + b"\x00\x01m\x00\x02/1" +
                              struct.pack(">I", len(data) + 1) + b"\x11" + data)
    return env.messages[0].body


def amf0(data: bytes):
    env = amf.decode_envelope(b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x02/1" +
                              struct.pack(">I", len(data)) + data)
    return env.messages[0].body


# AMF3 spec section 1.3.1 (U29) and 3.x: (bytes, value), decoded and (where shown) encoded
AMF3 = {
    "undefined": (b"\x00", UNDEFINED),
    "null": (b"\x01", None),
    "false": (b"\x02", False),
    "true": (b"\x03", True),
    "integer 0": (b"\x04\x00", 0),
    "integer 127 (1 byte)": (b"\x04\x7f", 127),
    "integer 128 (2 bytes)": (b"\x04\x81\x00", 128),
    "integer 16383": (b"\x04\xff\x7f", 16383),
    "integer 16384 (3 bytes)": (b"\x04\x81\x80\x00", 16384),
    "integer 2^21 (4 bytes)": (b"\x04\x80\xc0\x80\x00", 2**21),
    "integer max 2^28-1": (b"\x04\xbf\xff\xff\xff", 2**28 - 1),
    "integer -1": (b"\x04\xff\xff\xff\xff", -1),
    "integer min -2^28": (b"\x04\xc0\x80\x80\x00", -(2**28)),
    "double": (b"\x05" + struct.pack(">d", 1.5), 1.5),
    "empty string": (b"\x06\x01", ""),
    "string": (b"\x06\x0bhello", "hello"),
    "utf-8 string": (b"\x06\x05\xc3\xa9", "é"),
    "dense array": (b"\x09\x05\x01\x04\x01\x06\x03a", [1, "a"]),
    "anonymous dynamic object": (b"\x0a\x0b\x01\x03a\x04\x01\x01", {"a": 1}),
    "bytes": (b"\x0c\x07abc", b"abc"),
    "date": (b"\x08\x01" + struct.pack(">d", 86400000.0),
             datetime.datetime(1970, 1, 2, tzinfo=datetime.UTC)),
}


@pytest.mark.parametrize("data,value", AMF3.values(), ids=AMF3.keys())
def test_amf3_decodes(data, value):
    assert amf3(data) == value


@pytest.mark.parametrize("data,value", AMF3.values(), ids=AMF3.keys())
def test_amf3_encodes_to_the_spec_bytes(data, value):
    assert amf.encode3(value) == data


REFERENCES = {
    # 3.8: the second "ab" is a reference (U29S-ref 0 << 1) to the first
    "string reference": (b"\x09\x05\x01\x06\x05ab\x06\x00", ["ab", "ab"]),
    # 3.12: a second object reusing the first one's traits (U29O-traits-ref: 0b0001 = ref 0)
    "traits reference": (b"\x09\x05\x01" + b"\x0a\x13\x01\x03x\x04\x01" + b"\x0a\x01\x04\x02",
                         [{"x": 1}, {"x": 2}]),
    # 3.12: sealed members named in the traits, class name given
    "typed object with sealed members": (b"\x0a\x13\x07Pet\x03n\x06\x07cat", {"n": "cat"}),
    # 3.11: an associative part, then the dense part
    "mixed array": (b"\x09\x03\x03k\x04\x05\x01\x04\x07", {"k": 5, 0: 7}),
    "object reference": (b"\x09\x05\x01\x0a\x0b\x01\x01\x0a\x02", [{}, {}]),
}


@pytest.mark.parametrize("data,value", REFERENCES.values(), ids=REFERENCES.keys())
def test_amf3_references_and_traits(data, value):
    assert amf3(data) == value


AMF0 = {
    "number": (b"\x00" + struct.pack(">d", 42.0), 42.0),
    "boolean": (b"\x01\x01", True),
    "string": (b"\x02\x00\x03abc", "abc"),
    "object": (b"\x03\x00\x01a\x00" + struct.pack(">d", 1) + b"\x00\x00\x09", {"a": 1.0}),
    "null": (b"\x05", None),
    "undefined": (b"\x06", UNDEFINED),
    "ecma array": (b"\x08\x00\x00\x00\x01\x00\x01k\x02\x00\x01v\x00\x00\x09", {"k": "v"}),
    "strict array": (b"\x0a\x00\x00\x00\x02\x05\x02\x00\x01x", [None, "x"]),
    "long string": (b"\x0c\x00\x00\x00\x02hi", "hi"),
    "typed object": (b"\x10\x00\x03Cls\x00\x01a\x05\x00\x00\x09", {"a": None}),
    "reference": (b"\x0a\x00\x00\x00\x02\x03\x00\x00\x09\x07\x00\x01", [{}, {}]),
    "switch to AMF3": (b"\x11\x04\x05", 5),
}


@pytest.mark.parametrize("data,value", AMF0.values(), ids=AMF0.keys())
def test_amf0_decodes(data, value):
    assert amf0(data) == value


def test_envelope_round_trip():
    env = Envelope(3, {"Credentials": {"userid": "u", "password": "p"}},
                   [Message("machines.get", "/1", ["m1"]), Message("system.version", "/2", [])])
    back = amf.decode_envelope(amf.encode_envelope(env))
    assert back == env


BROKEN = {
    "empty": b"",
    "truncated header": b"\x00\x03\x00",
    "unknown AMF0 marker": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x0f",
    "string past the end": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x02\xff\xff",
    "huge array count": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x0a\xff\xff\xff\xff",
    "reference to nothing": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x07\x00\x05",
    "bad utf-8": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x02\x00\x01\xff",
    "trailing bytes": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x05!",
    "nested too deep": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01" + b"\x0a\x00\x00\x00\x01" * 100 + b"\x05",
    "externalizable": b"\x00\x00\x00\x00\x00\x01\x00\x01m\x00\x01r\x00\x00\x00\x01\x11\x0a\x07\x01",
}


@pytest.mark.parametrize("data", BROKEN.values(), ids=BROKEN.keys())
def test_broken_input_raises_amf_error(data):
    with pytest.raises(AmfError):
        amf.decode_envelope(data)


@given(st.binary(max_size=200))
@settings(max_examples=1000, deadline=None)
def test_any_bytes_decode_or_raise_amf_error(data):
    try:
        amf.decode_envelope(data)
    except AmfError:
        pass


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    max_leaves=20)


@given(values)
@settings(max_examples=300, deadline=None)
def test_every_value_round_trips_through_amf3(value):
    assert amf3(amf.encode3(value)) == value
