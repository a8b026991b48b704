"""The codec: real firmware packets parse, replies are well-formed, garbage is Malformed."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netservices.dhcp import wire
from tests.netservices.dhcp.harness import SERVER, Harness
from tests.netservices.dhcp.packets import decode, message

DATA = Path(__file__).parents[2] / "data" / "dhcp"
GOLDEN = {name: (DATA / f"{name}.bin").read_bytes()
          for name in ("qemu-bios-ipxe-discover", "ovmf-pxe-discover")}
UUID = "12345678-9abc-def0-1234-567890abcdef"  # what /sys/class/dmi/id/product_uuid says

CAPTURED = {
    "qemu-bios-ipxe-discover": {"arch": 0, "user_class": b"iPXE", "broadcast": False,
                                "vendor_class": b"PXEClient:Arch:00000:UNDI:002001"},
    "ovmf-pxe-discover": {"arch": 7, "user_class": b"", "broadcast": True,
                          "vendor_class": b"PXEClient:Arch:00007:UNDI:003000"},
}


@pytest.mark.parametrize("name,expected", CAPTURED.items(), ids=CAPTURED.keys())
def test_captured_firmware_discover_parses(name, expected):
    req = wire.parse(GOLDEN[name])
    assert req.msg_type == 1 and req.mac == "52:54:00:12:34:56"
    assert req.uuid == UUID, "option 97 normalized to the DMI spelling"
    assert {k: getattr(req, k) for k in expected} == expected


@pytest.mark.parametrize("name,file", [("qemu-bios-ipxe-discover", "http://10.0.0.2/boot/ipxe?mac=${net0/mac}"),
                                       ("ovmf-pxe-discover", "ipxe.efi")])
def test_captured_firmware_gets_its_boot_file(name, file):
    from netservices.dhcp import policy
    h = Harness()
    reply = policy.answer(wire.parse(GOLDEN[name], local=SERVER), h.ctx, h.now)
    got = decode(wire.encode(reply))
    assert got["file"] == file and got["options"]["message-type"] == 2


@pytest.mark.parametrize("raw,expected", [
    (b"\x00" + bytes.fromhex("78563412bc9af0de1234567890abcdef"), UUID),
    (b"\x01" + bytes(16), None),  # type 1 is not defined
    (b"\x00" + bytes(15), None),  # short
])
def test_uuid_normalization(raw, expected):
    assert wire.normalize_uuid(raw) == expected


def test_replies_are_padded_to_the_bootp_minimum_and_end_with_end():
    h = Harness(dns_servers=[], ntp_servers=[], domain="")  # a short reply
    data = wire.encode(h.reply("discover"))
    assert len(data) == 300
    assert data[236:240] == b"c\x82Sc" and data.rstrip(b"\0").endswith(b"\xff")


def test_reply_echoes_xid_chaddr_and_flags():
    h = Harness()
    got = decode(wire.encode(h.reply("discover", xid=0xDEADBEEF, flags=0x8000)))
    assert (got["xid"], got["chaddr"], got["flags"], got["op"]) == (0xDEADBEEF, "52:54:00:12:34:56", 0x8000, 2)


def test_option_82_is_the_last_option():
    h = Harness(relays=[{"subnet": "10.1.0.0/24", "first": "10.1.0.9", "last": "10.1.0.9"}])
    data = wire.encode(h.reply("discover", giaddr="10.1.0.1",
                               options=[("relay_agent_information", b"\x01\x02ab")]))
    assert data.rstrip(b"\0").endswith(b"\x52\x04\x01\x02ab\xff")


MALFORMED = {
    "empty": b"",
    "short": b"\x01" * 100,
    "no magic cookie": message("discover")[:236] + b"xxxx" + message("discover")[240:],
    "a reply, not a request": b"\x02" + message("discover")[1:],
    "plain BOOTP": message("discover")[:240] + b"\xff",
    "bad hlen": message("discover")[:2] + b"\x00" + message("discover")[3:],
    "message type of two bytes": message("discover")[:240] + b"\x35\x02\x01\x01\xff",
    "requested ip of 3 bytes": message("discover")[:240] + b"\x35\x01\x01\x32\x03\x01\x02\x03\xff",
    "truncated option": message("discover")[:240] + b"\x35\x01\x01\x3c\x40abc",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_raises_the_one_error(data):
    with pytest.raises(wire.Malformed):
        wire.parse(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_malformed(data):
    try:
        req = wire.parse(data)
    except wire.Malformed:
        return
    assert isinstance(req, wire.Request)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(GOLDEN)), st.lists(st.tuples(st.integers(0, 399), st.integers(0, 255)),
                                                  min_size=1, max_size=12),
       st.integers(240, 400))
def test_mutated_firmware_packets_parse_or_raise_malformed(name, flips, cut):
    data = bytearray(GOLDEN[name])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    try:
        wire.parse(bytes(data[:cut]))
    except wire.Malformed:
        pass
