"""The protocol core, table-driven: leases (RFC 2131), options (RFC 2132), PXE, relay, proxy."""

import pytest

from tests.netservices.dhcp.harness import SERVER, Harness
from tests.netservices.dhcp.packets import LINUX, MAC, OVMF_PXE, QEMU_BIOS_IPXE, UEFI_HTTP

OTHER = "52:54:00:00:00:99"
SID = ("server_id", str(SERVER))
OFFER, ACK, NAK = 2, 5, 6


def test_offer_carries_the_network_options():
    offer = Harness().send("discover", options=LINUX)
    o = offer["options"]
    assert (offer["yiaddr"], offer["op"]) == ("10.0.0.100", 2)
    assert o["message-type"] == OFFER and o["server_id"] == "10.0.0.2"
    assert o["subnet_mask"] == "255.255.255.0" and o["router"] == "10.0.0.1"
    assert o["name_server"] == "10.0.0.2" and o["NTP_server"] == "10.0.0.3"
    assert o["domain"] == b"rack.internal" and o["broadcast_address"] == "10.0.0.255"
    assert (o["lease_time"], o["renewal_time"], o["rebinding_time"]) == (3600, 1800, 3150)
    assert offer["length"] >= 300, "BOOTP minimum (RFC 1542)"
    assert "boot-file-name" not in o and offer["file"] == "", "no boot file for a plain client"


def test_dora_binds_and_commits_before_the_ack():
    h = Harness()
    ip = h.lease()
    assert ip == "10.0.0.100"
    assert [(str(lease.ip), lease.mac, lease.state) for lease in h.committed] == [(ip, MAC, "bound")]
    assert h.committed[0].expires == h.now + 3600


# (config overrides, firmware options) -> (file field, options expected, options absent)
BOOT = {
    "BIOS PXE ROM": ({}, [("pxe_client_architecture", b"\x00\x00"),
                          ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001")],
                     "undionly.kpxe", {"vendor_class_id": b"PXEClient", "vendor_specific": b"\x06\x01\x08\xff"},
                     [175]),
    "UEFI x64 (OVMF)": ({}, OVMF_PXE, "ipxe.efi", {"vendor_class_id": b"PXEClient"}, [175]),
    "UEFI IA32": ({}, [("pxe_client_architecture", b"\x00\x06"), ("vendor_class_id", b"PXEClient")],
                  "ipxe.efi", {}, []),
    "UEFI x64 type 9, snponly": ({"efi_boot_file": "snponly.efi"},
                                 [("pxe_client_architecture", b"\x00\x09"), ("vendor_class_id", b"PXEClient")],
                                 "snponly.efi", {}, []),
    "UEFI HTTP boot": ({}, UEFI_HTTP, "http://10.0.0.2/boot/ipxe.efi",
                       {"vendor_class_id": b"HTTPClient"}, ["vendor_specific"]),
    "iPXE gets its script and does not wait for ProxyDHCP": (
        {}, QEMU_BIOS_IPXE, "http://10.0.0.2/boot/ipxe?mac=${net0/mac}", {175: b"\xb0\x01\x01"}, []),
    "iPXE with a custom script URL": (
        {"ipxe_script_url": "http://{server}:8000/boot/ipxe"}, QEMU_BIOS_IPXE,
        "http://10.0.0.2:8000/boot/ipxe", {}, []),
    "iPXE chaining pxelinux: ipxe_script off gives the BIOS boot file": (
        {"ipxe_script": False, "bios_boot_file": "pxelinux.0"}, QEMU_BIOS_IPXE, "pxelinux.0", {}, []),
    "next-server elsewhere": ({"next_server": "10.0.0.9"}, OVMF_PXE, "ipxe.efi",
                              {"tftp_server_name": b"10.0.0.9"}, []),
}


@pytest.mark.parametrize("overrides,firmware,file,present,absent", BOOT.values(), ids=BOOT.keys())
def test_boot_file_by_architecture(overrides, firmware, file, present, absent):
    for kind in ("discover", "request"):  # the OFFER and the ACK agree
        h = Harness(**overrides)
        extra = [SID, ("requested_addr", "10.0.0.100")] if kind == "request" else []
        reply = h.send(kind, options=firmware + extra)
        o = reply["options"]
        assert reply["file"] == file and o["boot-file-name"] == file.encode()
        expected_next = overrides.get("next_server", "10.0.0.2")
        assert reply["siaddr"] == expected_next and o["tftp_server_name"] == expected_next.encode()
        assert {k: o.get(k) for k in present} == present
        assert not [k for k in absent if k in o]


def test_unknown_architecture_gets_an_address_but_no_boot_file():
    reply = Harness().send("discover", options=[("pxe_client_architecture", b"\x00\x0b"),
                                                ("vendor_class_id", b"PXEClient")])
    assert reply["yiaddr"] == "10.0.0.100" and "boot-file-name" not in reply["options"]


def test_long_boot_url_goes_in_option_67_only():
    url = "http://{server}/" + "x" * 200
    reply = Harness(ipxe_script_url=url).send("discover", options=QEMU_BIOS_IPXE)
    assert reply["file"] == "" and reply["options"]["boot-file-name"] == url.replace("{server}", "10.0.0.2").encode()


# RFC 2131 4.1: where replies go. (message kw) -> (dest, arp, broadcast flag in reply)
ROUTES = {
    "no flag, no ciaddr: unicast to yiaddr via an ARP entry": ({}, ("10.0.0.100", 68), True, 0),
    "broadcast flag": ({"flags": 0x8000}, ("255.255.255.255", 68), False, 0x8000),
    "relayed: to the relay's port 67": ({"giaddr": "10.0.0.1"}, ("10.0.0.1", 67), False, 0),
}


@pytest.mark.parametrize("kw,dest,arp,flags", ROUTES.values(), ids=ROUTES.keys())
def test_offer_destination(kw, dest, arp, flags):
    reply = Harness().send("discover", **kw)
    assert (reply["dest"], reply["arp"], reply["flags"]) == (dest, arp, flags)


def test_renew_is_unicast_to_ciaddr_and_extends_the_lease():
    h = Harness()
    ip = h.lease()
    h.now += 1800
    ack = h.send("request", ciaddr=ip)
    assert ack["options"]["message-type"] == ACK and ack["yiaddr"] == ip and ack["ciaddr"] == ip
    assert (ack["dest"], ack["arp"]) == ((ip, 68), False)
    assert h.committed[-1].expires == h.now + 3600


def test_rebind_after_the_server_forgot_is_granted_when_free():
    ack = Harness().send("request", ciaddr="10.0.0.105", flags=0x8000)
    assert ack["options"]["message-type"] == ACK and ack["yiaddr"] == "10.0.0.105"


# INIT-REBOOT (RFC 2131 4.3.2): REQUEST with option 50, no server id.
REBOOT = {
    "its own address": ("10.0.0.100", ACK),
    "a free pool address": ("10.0.0.107", ACK),
    "another subnet": ("192.168.1.5", NAK),
    "outside the range, inside the subnet": ("10.0.0.50", NAK),
    "another client's address": ("10.0.0.101", NAK),
}


@pytest.mark.parametrize("ip,expected", REBOOT.values(), ids=REBOOT.keys())
def test_init_reboot(ip, expected):
    h = Harness()
    h.lease()
    h.lease(OTHER)
    reply = h.send("request", options=[("requested_addr", ip)])
    assert reply["options"]["message-type"] == expected
    if expected == NAK:
        assert reply["dest"] == ("255.255.255.255", 68) and reply["yiaddr"] == "0.0.0.0"
        assert "lease_time" not in reply["options"]


def test_request_for_another_server_withdraws_our_offer_silently():
    h = Harness(range=["10.0.0.100", "10.0.0.100"])
    offered = h.send("discover")["yiaddr"]
    assert h.send("request", options=[("server_id", "10.0.0.250"), ("requested_addr", offered)]) is None
    assert h.send("discover", mac=OTHER)["yiaddr"] == offered, "the address is free again"
    assert h.committed == []


def test_offers_hold_their_address_until_they_time_out():
    h = Harness()
    first = h.send("discover")["yiaddr"]
    assert h.send("discover", mac=OTHER)["yiaddr"] != first
    h.now += 31
    h.table.pools[0].cursor = 0
    assert h.send("discover", mac="52:54:00:00:00:98")["yiaddr"] == first


def test_a_client_gets_its_address_back():
    h = Harness()
    ip = h.lease()
    h.now += 7200  # even after the lease expired, while nobody else took it
    assert h.send("discover")["yiaddr"] == ip


def test_release_frees_the_address():
    h = Harness(range=["10.0.0.100", "10.0.0.100"])
    ip = h.lease()
    assert h.send("discover", mac=OTHER) is None, "pool of one, taken: silence"
    assert h.send("release", ciaddr=ip, options=[SID]) is None
    assert h.committed[-1].state == "free"
    assert h.lease(OTHER) == ip


def test_decline_keeps_the_address_out_of_the_pool():
    h = Harness(range=["10.0.0.100", "10.0.0.101"])
    ip = h.lease()
    h.send("decline", options=[SID, ("requested_addr", ip)])
    assert h.committed[-1].state == "declined"
    assert h.lease() == "10.0.0.101"
    assert h.send("discover", mac=OTHER) is None, "the declined address is not offered"


def test_inform_gets_configuration_without_a_lease():
    reply = Harness().send("inform", ciaddr="10.0.0.50", options=LINUX)
    o = reply["options"]
    assert o["message-type"] == ACK and reply["yiaddr"] == "0.0.0.0"
    assert "lease_time" not in o and o["router"] == "10.0.0.1"
    assert reply["dest"] == ("10.0.0.50", 68)


RESERVED = [{"mac": MAC, "ip": "10.0.0.20", "hostname": "node1"}]


def test_reserved_mac_gets_its_address_and_hostname():
    h = Harness(reservations=RESERVED)
    offer = h.send("discover")
    assert offer["yiaddr"] == "10.0.0.20" and offer["options"]["hostname"] == b"node1"
    assert h.lease() == "10.0.0.20"
    assert h.committed[-1].hostname == "node1"


def test_reserved_address_is_never_given_to_another_mac():
    h = Harness(reservations=RESERVED, range=["10.0.0.20", "10.0.0.21"])
    assert h.send("discover", mac=OTHER, options=[("requested_addr", "10.0.0.20")])["yiaddr"] == "10.0.0.21"
    assert h.send("request", mac=OTHER, options=[("requested_addr", "10.0.0.20")])["options"]["message-type"] == NAK


def test_reserved_mac_asking_for_its_old_dynamic_address_is_sent_back_to_discover():
    h = Harness(reservations=RESERVED)
    reply = h.send("request", ciaddr="10.0.0.100")
    assert reply["options"]["message-type"] == NAK


def test_exhausted_pool_is_silent():
    h = Harness(range=["10.0.0.100", "10.0.0.101"])
    h.lease("52:54:00:00:00:01")
    h.lease("52:54:00:00:00:02")
    assert h.send("discover", mac="52:54:00:00:00:03") is None


RELAYS = [{"subnet": "10.1.0.0/24", "first": "10.1.0.100", "last": "10.1.0.200"},
          {"subnet": "10.2.0.0/24", "first": "10.2.0.10", "last": "10.2.0.20", "router": "10.2.0.254"}]
AGENT = b"\x01\x06eth0/1\x02\x04rack"


@pytest.mark.parametrize("giaddr,pool_ip,router", [("10.1.0.1", "10.1.0.100", "10.1.0.1"),
                                                   ("10.2.0.1", "10.2.0.10", "10.2.0.254")])
def test_relayed_requests_draw_from_the_relays_subnet(giaddr, pool_ip, router):
    h = Harness(relays=RELAYS)
    relayed = {"giaddr": giaddr, "options": [("relay_agent_information", AGENT)]}
    offer = h.send("discover", **relayed)
    assert (offer["yiaddr"], offer["giaddr"], offer["dest"]) == (pool_ip, giaddr, (giaddr, 67))
    assert offer["options"]["router"] == router and offer["options"]["subnet_mask"] == "255.255.255.0"
    assert offer["options"]["relay_agent_information"] == AGENT
    ack = h.send("request", giaddr=giaddr, options=[SID, ("requested_addr", pool_ip),
                                                    ("relay_agent_information", AGENT)])
    assert ack["options"]["message-type"] == ACK and ack["dest"] == (giaddr, 67)
    assert ack["options"]["relay_agent_information"] == AGENT


def test_relay_of_an_unknown_subnet_is_ignored():
    assert Harness(relays=RELAYS).send("discover", giaddr="172.16.0.1") is None


def test_nak_through_a_relay_asks_it_to_broadcast():
    nak = Harness(relays=RELAYS).send("request", giaddr="10.1.0.1", options=[("requested_addr", "10.0.0.100")])
    assert nak["options"]["message-type"] == NAK and nak["dest"] == ("10.1.0.1", 67)
    assert nak["flags"] & 0x8000


# ProxyDHCP: (message, port, firmware) -> reply type or None
PROXY = {
    "PXE DISCOVER on 67": ("discover", 67, OVMF_PXE, OFFER),
    "iPXE DISCOVER on 67": ("discover", 67, QEMU_BIOS_IPXE, OFFER),
    "plain client DISCOVER on 67": ("discover", 67, LINUX, None),
    "PXE REQUEST on 67 (the real server's business)": ("request", 67, OVMF_PXE, None),
    "PXE REQUEST on 4011": ("request", 4011, OVMF_PXE, ACK),
    "plain REQUEST on 4011": ("request", 4011, LINUX, None),
}


@pytest.mark.parametrize("kind,port,firmware,expected", PROXY.values(), ids=PROXY.keys())
def test_proxy_answers_only_pxe_clients_with_boot_information(kind, port, firmware, expected):
    h = Harness(proxy=True)
    reply = h.send(kind, port=port, peer=("10.0.0.77", 4011) if port == 4011 else ("0.0.0.0", 68),
                   ciaddr="10.0.0.77" if port == 4011 else "0.0.0.0", options=firmware)
    if expected is None:
        assert reply is None
        return
    o = reply["options"]
    assert o["message-type"] == expected and reply["yiaddr"] == "0.0.0.0"
    assert reply["file"] and o["vendor_class_id"] == b"PXEClient" and o["server_id"] == "10.0.0.2"
    assert "lease_time" not in o and "router" not in o and 175 not in o
    assert reply["dest"] == (("10.0.0.77", 4011) if port == 4011 else ("255.255.255.255", 68))
    assert h.committed == []


def test_no_server_address_no_answer():
    from netservices.dhcp import policy, wire
    from tests.netservices.dhcp.packets import message
    h = Harness()
    assert policy.answer(wire.parse(message("discover")), h.ctx, h.now) is None


def test_an_address_reserved_while_another_client_holds_it_is_not_given_twice():
    h = Harness(range=["10.0.0.100", "10.0.0.101"])
    assert h.lease(OTHER) == "10.0.0.100"
    h2 = Harness(range=["10.0.0.100", "10.0.0.101"], reservations=[{"mac": MAC, "ip": "10.0.0.100"}])
    h2.table, h2.ctx.table = h.table, h.table  # the reservation arrives; the lease is still held
    assert h2.lease() == "10.0.0.101", "served from the range meanwhile"
    h2.now += 3601  # OTHER's lease ended
    renew = h2.send("request", ciaddr="10.0.0.101")
    assert renew["options"]["message-type"] == NAK, "sent back to DISCOVER ..."
    assert h2.lease() == "10.0.0.100", "... to get its reserved address"


def test_offers_to_clients_that_never_come_back_do_not_pile_up():
    h = Harness(range=["10.0.0.100", "10.0.0.103"])
    for i in range(200):
        h.now += 31
        h.send("discover", mac=f"02:00:00:00:01:{i:02x}")
    assert len(h.table.offers) <= 4 and len(h.table.offered_to) <= 4
