"""The server on a namespace segment for what no stock client exercises: relayed requests,
ProxyDHCP on 67 and 4011, router advertisements, and refusing to start unsafely."""

import json
import subprocess
import sys
import time

import pytest

from tests.netservices.dhcp.conftest import APPLIANCE, ROOT

PXE_UEFI = ["--opt", "60=" + b"PXEClient:Arch:00007:UNDI:003000".hex(), "--opt", "93=0007"]
AGENT = "0106657468302f31"  # option 82: circuit id "eth0/1"


def _send(served, *args, client=0):
    return json.loads(served.client(client, *args).stdout)


def test_relayed_request_is_answered_to_the_relay_from_its_subnets_pool(dhcp_segment):
    served = dhcp_segment(numbered=True, relays=[{"subnet": "10.88.0.0/24", "first": "10.88.0.100",
                                                  "last": "10.88.0.200", "router": "10.88.0.1"}])
    relay = served.clients[0]  # 10.77.0.2 on the segment, relaying for 10.88.0.0/24
    relay.run(["ip", "addr", "add", "10.88.0.1/32", "dev", "lo"])  # its address on the far side
    served.server.run(["ip", "route", "add", "10.88.0.0/24", "via", "10.77.0.2"])
    relayed = ["--bind", "10.88.0.1:67", "--to", "10.77.0.1:67", "send", "--giaddr", "10.88.0.1",
               "--opt", f"82={AGENT}"]
    offer = _send(served, *relayed, "--kind", "discover")
    assert offer["options"]["message-type"] == 2 and offer["yiaddr"] == "10.88.0.100"
    assert offer["giaddr"] == "10.88.0.1" and offer["options"]["router"] == "10.88.0.1"
    assert offer["options"]["relay_agent_information"] == AGENT
    ack = _send(served, *relayed, "--kind", "request", "--requested", "10.88.0.100",
                "--server-id", "10.77.0.1")
    assert ack["options"]["message-type"] == 5 and ack["options"]["relay_agent_information"] == AGENT
    assert served.leases()["10.88.0.100"].state == "bound"


def test_proxy_dhcp_gives_boot_information_and_no_address(dhcp_segment):
    served = dhcp_segment(numbered=True, proxy=True, range=[])
    offer = _send(served, "send", "--kind", "discover", *PXE_UEFI)
    assert offer["options"]["message-type"] == 2 and offer["yiaddr"] == "0.0.0.0"
    assert offer["file"] == "ipxe.efi" and offer["siaddr"] == "10.77.0.1"
    assert offer["options"]["vendor_class_id"] == b"PXEClient".hex()
    ack = _send(served, "--bind", "10.77.0.2:68", "--to", "10.77.0.1:4011", "send", "--kind", "request",
                "--ciaddr", "10.77.0.2", *PXE_UEFI)
    assert ack["options"]["message-type"] == 5 and ack["file"] == "ipxe.efi" and ack["yiaddr"] == "0.0.0.0"
    assert _send(served, "--timeout", "1", "send", "--kind", "discover") == {"timeout": True}, \
        "a client that is not PXE gets nothing from a proxy"
    assert not served.leases()


RS_CLIENT = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
idx = socket.if_nametoindex("eth0")
s.sendto(struct.pack("!BBHI", 133, 0, 0, 0), ("ff02::2", 0, 0, idx))
s.settimeout(0.2)
end = time.monotonic() + 3
while time.monotonic() < end:
    try:
        data, anc, _, peer = s.recvmsg(1500, 64)
    except TimeoutError:
        continue
    if data[0] == 134:
        hops = [struct.unpack("=i", d)[0] for lvl, t, d in anc if t == socket.IPV6_HOPLIMIT]
        print(data.hex(), peer[0], hops[0] if hops else -1)
        sys.exit(0)
print("none")
"""


def _link_local_ready(ns, timeout=10):
    deadline = time.monotonic() + timeout
    while "tentative" in ns.run(["ip", "-6", "addr", "show", "dev", "eth0"]).stdout:
        assert time.monotonic() < deadline, "IPv6 duplicate address detection did not finish"
        time.sleep(0.2)


@pytest.mark.parametrize("enabled", [True, False])
def test_router_solicitation_gets_an_advertisement_with_lifetime_0(dhcp_segment, enabled):
    served = dhcp_segment(router_advertisements=enabled)
    for ns in (served.server, served.clients[0]):
        _link_local_ready(ns)
    out = served.clients[0].run([sys.executable, "-c", RS_CLIENT]).stdout.split()
    if not enabled:
        assert out == ["none"]
        return
    ra, source, hops = bytes.fromhex(out[0]), out[1], int(out[2])
    assert ra[0] == 134 and int.from_bytes(ra[6:8], "big") == 0, "router lifetime 0: not a router"
    assert len(ra) == 16, "no prefix, no other options"
    assert source.startswith("fe80::") and hops == 255


def test_dhcp_without_an_interface_does_not_start(tmp_path):
    cfg = tmp_path / "appliance.toml"
    cfg.write_text('[dhcp]\nsubnet = "10.77.0.0/24"\n')
    result = subprocess.run([*APPLIANCE, "run", "--only", "dhcp", "-c", str(cfg)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "dhcp.interface: must be set when dhcp is enabled" in result.stderr


def test_dhcp_on_a_missing_interface_stops_start_up_naming_it(netns, tmp_path):
    ns = netns()
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[node]\nstate_dir = "{tmp_path}"\n'
                   '[dhcp]\ninterface = "nope0"\nsubnet = "10.77.0.0/24"\nport = 6767\n')
    result = ns.run([*APPLIANCE, "run", "--only", "dhcp", "-c", str(cfg)], check=False, cwd=ROOT, timeout=30)
    assert result.returncode == 1
    assert "cannot start dhcp: cannot listen on udp 0.0.0.0:6767 on interface nope0" in result.stderr
