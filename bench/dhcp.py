"""DHCP DORA throughput with durable leases: this appliance against dnsmasq, same setup, same run.

Each server runs alone in a namespace on a private bridge with its lease file on (ours: the
fsynced journal; dnsmasq: `--dhcp-leasefile`, `--no-ping`); Kea's perfdhcp in another
namespace offers DISCOVER/REQUEST exchanges at increasing rates, each step bounded to
PERIOD seconds and RATE*PERIOD exchanges. Printed: completed leases/s and drops per
step, then the best rate each server held with under 1 % drops, and their ratio.
"""

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from appliance.lab.netns import Netns

RATES = (200, 300, 400, 500, 750, 1000, 1250, 1500, 2000)
PERIOD = 5  # seconds per step
MAX_DROPS = 0.01
WAIT = 1.0  # seconds perfdhcp listens for late replies after its last request
SUBNET, SERVER, CLIENT = "10.77.0.0/16", "10.77.0.1", "10.77.0.2"
FIRST, LAST = "10.77.1.0", "10.77.254.254"
ROOT = Path(__file__).parents[1]
# Lease files on a disk, not tmpfs, where fsync would cost nothing.


def _appliance(ns: Netns, work: Path) -> list[str]:
    cfg = work / "appliance.toml"
    cfg.write_text(f'[node]\nstate_dir = "{work}"\nlog_level = "warning"\n'
                   f'[dhcp]\ninterface = "eth0"\nsubnet = "{SUBNET}"\nrange = ["{FIRST}", "{LAST}"]\n'
                   f'router = "{SERVER}"\nrouter_advertisements = false\n'
                   f'lease_file = "{work}/dhcp.leases"\n')
    return [sys.executable, "-m", "appliance", "run", "--only", "dhcp", "-c", str(cfg)]


def _dnsmasq(ns: Netns, work: Path) -> list[str]:
    return [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping",
            f"--dhcp-range={FIRST},{LAST},1h", "--dhcp-lease-max=100000",
            f"--dhcp-leasefile={work}/dnsmasq.leases", f"--pid-file={work}/dnsmasq.pid",
            f"--dhcp-option=3,{SERVER}", "--log-facility=/dev/null"]


SERVERS = {"pylabs": _appliance, "dnsmasq": _dnsmasq}


def _listening(ns: Netns, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while ":67 " not in ns.run(["ss", "-lun"]).stdout:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start listening on port 67")
        time.sleep(0.1)


def _perfdhcp(client: Netns, rate: int) -> dict[str, float]:
    count = rate * PERIOD
    began = time.monotonic()
    out = client.run(["perfdhcp", "-4", "-l", "eth0", "-r", str(rate), "-R", str(count),
                      "-n", str(count), "-p", str(PERIOD + 5), "-W", str(int(WAIT * 1e6)), SERVER],
                     check=False, timeout=PERIOD + 60).stdout
    elapsed = time.monotonic() - began - WAIT  # perfdhcp waits WAIT s for late replies at the end
    acks = _stat(out, "REQUEST-ACK", "received packets")
    sent = _stat(out, "DISCOVER-OFFER", "sent packets")
    return {"leases": acks / elapsed, "drops": 1 - acks / sent if sent else 1.0}


def _stat(text: str, exchange: str, name: str) -> int:
    block = text.split(f"Statistics for: {exchange}", 1)[1]
    return int(re.search(rf"{name}: (\d+)", block).group(1))


def _step(name: str, rate: int, switch: Netns) -> dict[str, float]:
    server, client = Netns.create("bench"), Netns.create("bench")
    try:
        switch.add_port("br0", server, "eth0", address=f"{SERVER}/16")
        switch.add_port("br0", client, "eth0", address=f"{CLIENT}/16")
        with tempfile.TemporaryDirectory(prefix=f"bench-dhcp-{name}-", dir="/var/tmp") as tmp:
            server.popen(SERVERS[name](server, Path(tmp)), cwd=ROOT, stdout=subprocess.DEVNULL)
            _listening(server)
            return _perfdhcp(client, rate)
    finally:
        client.close()
        server.close()


def _best(results: dict[int, dict[str, float]]) -> float:
    held = [r["leases"] for r in results.values() if r["drops"] < MAX_DROPS]
    return max(held, default=0.0)


def main() -> int:
    if not shutil.which("perfdhcp") and not Path("/usr/sbin/perfdhcp").exists():
        print("bench dhcp: perfdhcp not found (Debian package kea-admin)", file=sys.stderr)
        return 1
    results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in SERVERS}
    with Netns.create("bench") as switch:
        switch.add_bridge("br0")
        print(f"{'offered/s':>10} {'pylabs leases/s':>16} {'drops':>7} {'dnsmasq leases/s':>17} {'drops':>7}")
        for rate in RATES:
            for name in SERVERS:
                results[name][rate] = _step(name, rate, switch)
            ours, theirs = results["pylabs"][rate], results["dnsmasq"][rate]
            print(f"{rate:>10} {ours['leases']:>16.0f} {ours['drops']:>7.1%} "
                  f"{theirs['leases']:>17.0f} {theirs['drops']:>7.1%}", flush=True)
    ours, theirs = _best(results["pylabs"]), _best(results["dnsmasq"])
    ratio = ours / theirs if theirs else float("inf")
    print(f"best rate with < {MAX_DROPS:.0%} drops: pylabs {ours:.0f}/s, dnsmasq {theirs:.0f}/s, "
          f"ratio {ratio:.2f}x (target >= 2x)")
    peaks = {name: max(r["leases"] for r in steps.values()) for name, steps in results.items()}
    print(f"peak completed leases/s whatever the drops: pylabs {peaks['pylabs']:.0f}/s, "
          f"dnsmasq {peaks['dnsmasq']:.0f}/s, ratio {peaks['pylabs'] / max(peaks['dnsmasq'], 1):.2f}x")
    return 0
