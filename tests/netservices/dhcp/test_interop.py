"""Real clients against the real server, inside network namespaces: busybox udhcpc, ISC
dhclient, and Kea's perfdhcp for many clients at once."""

import re
import signal
import time

import pytest

from tests.fixtures.tools import require_tool

ENV_SCRIPT = """#!/bin/sh
# udhcpc/dhclient hook: record the event and its variables (one file each, renamed into
# place whole), then configure the address as a real hook would.
tmp=$(mktemp -p {out})
{{ echo "event=$1${{reason}}"; env | sort; }} > "$tmp"
mv "$tmp" {out}/event.$(date +%s%N)
case "$1" in bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;; esac
exit 0
"""


def _script(tmp_path, name="hook"):
    path = tmp_path / f"{name}.sh"
    out = tmp_path / f"{name}.events"
    out.mkdir()
    path.write_text(ENV_SCRIPT.format(out=out))
    path.chmod(0o755)
    return path, out


def _events(out) -> list[dict]:
    blocks = [p.read_text() for p in sorted(out.glob("event.*"), key=lambda p: int(p.suffix[1:]))]
    return [dict(line.split("=", 1) for line in b.splitlines() if "=" in line) for b in blocks]


def _wait_for(out, event: str, count: int = 1, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _events(out) if e.get("event") == event]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.1)
    raise AssertionError(f"no {event} event #{count}; got {[e.get('event') for e in _events(out)]}")


@pytest.mark.parametrize("broadcast", [False, True], ids=["unicast replies", "broadcast flag"])
def test_udhcpc_gets_renews_and_releases_a_lease(dhcp_segment, tmp_path, broadcast):
    busybox = require_tool("busybox")
    served = dhcp_segment()
    client = served.clients[0]
    hook, out = _script(tmp_path)
    cmd = [busybox, "udhcpc", "-f", "-i", "eth0", "-s", str(hook), "-t", "5", "-T", "1", "-A", "1"]
    proc = client.popen(cmd + (["-B"] if broadcast else []))
    bound = _wait_for(out, "bound")
    assert bound["ip"] == "10.77.0.100" and bound["mask"] == "24" and bound["router"] == "10.77.0.1"
    assert bound["serverid"] == "10.77.0.1" and bound["lease"] == "3600"
    assert bound["dns"] == "10.77.0.1" and bound["domain"] == "rack.test"
    assert served.leases()["10.77.0.100"].state == "bound"
    proc.send_signal(signal.SIGUSR1)  # renew now: unicast REQUEST from 10.77.0.100
    assert _wait_for(out, "renew")["ip"] == "10.77.0.100"
    proc.send_signal(signal.SIGUSR2)  # release
    deadline = time.monotonic() + 10
    while served.leases()["10.77.0.100"].state != "free":
        assert time.monotonic() < deadline, "RELEASE not recorded"
        time.sleep(0.1)


def test_udhcpc_as_a_pxe_client_gets_its_boot_file(dhcp_segment, tmp_path):
    busybox = require_tool("busybox")
    served = dhcp_segment(efi_boot_file="snponly.efi")
    hook, out = _script(tmp_path)
    served.clients[0].popen([busybox, "udhcpc", "-f", "-q", "-i", "eth0", "-s", str(hook), "-t", "5", "-T", "1",
                             "-V", "PXEClient:Arch:00007:UNDI:003000", "-x", "0x5d:0007", "-O", "0x42", "-O", "0x43"])
    bound = _wait_for(out, "bound")
    assert bound["boot_file"] == "snponly.efi" and bound["siaddr"] == "10.77.0.1"
    assert bound["tftp"] == "10.77.0.1" and bound["bootfile"] == "snponly.efi"  # options 66, 67


def test_dhclient_binds_then_reboots_into_the_same_address(dhcp_segment, tmp_path):
    dhclient = require_tool("dhclient")
    served = dhcp_segment()
    client = served.clients[0]
    hook, out = _script(tmp_path, "dh")
    leases, pid = tmp_path / "dhclient.leases", tmp_path / "dhclient.pid"
    base = [dhclient, "-4", "-v", "-sf", str(hook), "-lf", str(leases), "-pf", str(pid)]
    client.run(base + ["-1", "eth0"], timeout=30)
    first = _wait_for(out, "BOUND")
    assert first["new_ip_address"] == "10.77.0.100" and first["new_routers"] == "10.77.0.1"
    assert first["new_domain_name"] == "rack.test" and first["new_dhcp_lease_time"] == "3600"
    client.run(base + ["-r", "eth0"], timeout=30)  # release, stop
    client.run(["ip", "addr", "flush", "dev", "eth0"])
    served.clients[0].run(["true"])
    client.run(base + ["-1", "eth0"], timeout=30)  # INIT-REBOOT from the lease file
    again = [e for e in _events(out) if e.get("event") in ("BOUND", "REBOOT")][-1]
    assert again["new_ip_address"] == "10.77.0.100"
    client.run(base + ["-x", "eth0"], timeout=30)


def _perfdhcp_stats(text: str) -> dict[str, dict[str, int]]:
    """perfdhcp's per-exchange statistics: {"DISCOVER-OFFER": {"sent packets": N, …}, …}."""
    stats, current = {}, None
    for line in text.splitlines():
        head = re.match(r"\*+Statistics for: ([\w-]+)\*+", line)
        if head:
            current = stats.setdefault(head.group(1), {})
        elif current is not None and (m := re.match(r"(\w[\w ]*?): (-?\d+)\s*$", line.strip())):
            current[m.group(1)] = int(m.group(2))
    return stats


def test_perfdhcp_hundreds_of_clients_all_get_distinct_durable_leases(dhcp_segment):
    perfdhcp = require_tool("perfdhcp")
    served = dhcp_segment(range=["10.77.0.10", "10.77.0.250"], numbered=True)
    result = served.clients[0].run([perfdhcp, "-4", "-l", "eth0", "-r", "100", "-R", "200", "-n", "200",
                                    "-p", "20", "-W", "1000000"], check=False, timeout=60)
    stats = _perfdhcp_stats(result.stdout)
    assert stats["REQUEST-ACK"]["received packets"] == 200, result.stdout + result.stderr
    assert stats["DISCOVER-OFFER"]["drops"] == 0 and stats["REQUEST-ACK"]["drops"] == 0
    bound = [lease for lease in served.leases().values() if lease.state == "bound"]
    assert len(bound) == 200 and len({lease.mac for lease in bound}) == 200
