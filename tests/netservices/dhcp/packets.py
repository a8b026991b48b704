"""Client messages for the tests, built with scapy, and server replies decoded with it."""

from scapy.layers.dhcp import BOOTP, DHCP

MAC = "52:54:00:12:34:56"

# What the firmwares send (PXE-NOTES: decoded from captures), as scapy options.
QEMU_BIOS_IPXE = [
    ("pxe_client_architecture", b"\x00\x00"), ("pxe_client_network_interface", b"\x01\x02\x01"),
    ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"), ("user_class", b"iPXE"),
    (175, b"\x13\x01\x01\x15\x01\x01\xeb\x03\x01\x15\x00\xb1\x05\x01\x10\xec\x10\x00"),
    ("client_id", b"\x01" + bytes.fromhex(MAC.replace(":", ""))),
    ("param_req_list", [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131,
                        132, 133, 134, 135, 175, 203]),
]
OVMF_PXE = [
    ("pxe_client_architecture", b"\x00\x07"), ("pxe_client_network_interface", b"\x01\x03\x00"),
    ("vendor_class_id", b"PXEClient:Arch:00007:UNDI:003000"),
    ("pxe_client_machine_identifier", b"\x00" + bytes.fromhex("78563412bc9af0de1234567890abcdef")),
    ("param_req_list", [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50,
                        51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135]),
]
UEFI_HTTP = [("pxe_client_architecture", b"\x00\x10"),
             ("vendor_class_id", b"HTTPClient:Arch:00016:UNDI:003000")]
LINUX = [("param_req_list", [1, 3, 6, 12, 15, 28, 42]), ("hostname", b"box")]


def message(kind: str, mac: str = MAC, *, xid: int = 0x1234, ciaddr: str = "0.0.0.0",
            giaddr: str = "0.0.0.0", flags: int = 0, options=()) -> bytes:
    """A client message of type `kind` ("discover", "request", …) as UDP payload bytes."""
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    opts = [("message-type", kind), *options, "end"]
    return bytes(BOOTP(op=1, chaddr=chaddr, xid=xid, ciaddr=ciaddr, giaddr=giaddr, flags=flags)
                 / DHCP(options=opts))


def decode(data: bytes) -> dict:
    """A reply as a dict: header fields plus `options` by scapy name."""
    pkt = BOOTP(data)
    options = {o[0]: o[1] for o in pkt[DHCP].options if isinstance(o, tuple)}
    return {"op": pkt.op, "xid": pkt.xid, "yiaddr": pkt.yiaddr, "siaddr": pkt.siaddr,
            "ciaddr": pkt.ciaddr, "giaddr": pkt.giaddr, "flags": int(pkt.flags),
            "file": pkt.file.rstrip(b"\0").decode(), "chaddr": pkt.chaddr[:6].hex(":"),
            "options": options, "length": len(data)}
