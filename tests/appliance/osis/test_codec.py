"""Frames: every object round-trips; every damaged frame is refused before decoding."""

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.osis import codec
from appliance.osis.codec import CorruptValue
from appliance.osis.schema import TYPES, domain

text = st.text(max_size=40)
opt = st.none() | text
nic = st.builds(domain.NetworkInterface, mac=text, name=opt, driver=opt, ip=opt, boot=st.booleans(),
                speed_mbps=st.none() | st.integers(0, 2**40))
disk = st.builds(domain.Disk, name=text, size_bytes=st.integers(0, 2**62), serial=opt)
machines = st.builds(
    domain.Machine, guid=st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}", fullmatch=True),
    uuid=opt, serial=opt, hostname=opt, cpus=st.integers(0, 2**31 - 1),
    memory_mb=st.integers(0, 2**50), interfaces=st.lists(nic, max_size=4),
    disks=st.lists(disk, max_size=3), tags=st.dictionaries(text, text, max_size=3),
    state=st.sampled_from(sorted(domain.MachineState._VALUES_TO_NAMES)),
    updated=st.floats(allow_nan=False, allow_infinity=False))

SAMPLES = {
    "machine": domain.Machine(guid="m1", hostname="n1", interfaces=[domain.NetworkInterface(mac="aa:bb")]),
    "lease": domain.Lease(guid="10.0.0.9", ip="10.0.0.9", mac="aa:bb", state=domain.LeaseState.BOUND),
    "dnsrecord": domain.DnsRecord(guid="r1", name="n1.rack.test", rtype="A", value="10.0.0.9"),
    "agent": domain.Agent(guid="a1", jid="n1@rack.test", status=domain.AgentStatus.ONLINE),
    "job": domain.Job(guid="j1", agent="a1", action="tasklet", tags=["facts"]),
    "monitorsample": domain.MonitorSample(guid="s1", agent="a1", metric="load1", value=0.5),
    "event": domain.Event(guid="e1", kind="machine.enrolled", data={"ip": "10.0.0.9"}),
}


def test_every_type_has_a_sample():
    assert set(SAMPLES) == set(TYPES)


@pytest.mark.parametrize("obj", SAMPLES.values(), ids=SAMPLES.keys())
def test_round_trip(obj):
    assert codec.decode(codec.encode(obj)) == obj


@given(machines)
@settings(max_examples=200, deadline=None)
def test_any_machine_round_trips(obj):
    assert codec.decode(codec.encode(obj), TYPES["machine"]) == obj


@given(machines, st.data())
@settings(max_examples=200, deadline=None)
def test_every_truncation_is_refused(obj, data):
    frame = codec.encode(obj)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(CorruptValue):
        codec.decode(frame[:cut])


@given(machines, st.data())
@settings(max_examples=200, deadline=None)
def test_any_flipped_bit_is_refused(obj, data):
    frame = bytearray(codec.encode(obj))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CorruptValue):
        codec.decode(bytes(frame), TYPES["machine"])


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_garbage_raises_only_corrupt_value(data):
    try:
        codec.decode(data)
    except CorruptValue:
        pass


def test_trailing_garbage_is_refused():
    with pytest.raises(CorruptValue, match="payload is .* bytes, the frame says"):
        codec.decode(codec.encode(SAMPLES["machine"]) + b"\0")


def test_a_frame_of_another_type_is_refused():
    with pytest.raises(CorruptValue, match="frame holds a lease, expected a machine"):
        codec.decode(codec.encode(SAMPLES["lease"]), TYPES["machine"])


def test_a_valid_frame_around_a_bad_payload_is_refused():
    payload = b"\x0b\x00\x01\xff\xff\xff\xf0"  # a string field claiming ~4 GB
    frame = codec.HEADER.pack(b"OS", 1, 1, len(payload), zlib.crc32(payload)) + payload
    with pytest.raises(CorruptValue, match="payload does not decode"):
        codec.decode(frame)


@pytest.mark.parametrize("header,message", [
    (struct.pack(">2sBBII", b"XX", 1, 1, 0, 0), "bad magic"),
    (struct.pack(">2sBBII", b"OS", 9, 1, 0, 0), "frame format 9 is not supported"),
    (struct.pack(">2sBBII", b"OS", 1, 99, 0, zlib.crc32(b"")), "unknown type id 99"),
])
def test_bad_headers(header, message):
    with pytest.raises(CorruptValue, match=message):
        codec.decode(header)
