"""DNS: dnsperf against our server and dnsmasq, the same 1000-name zone, in one run.

Both serve host0 … host999.rack.internal (A) and their PTRs on 127.0.0.1, private ports;
dnsmasq with --no-resolv --no-hosts --conf-file=/dev/null and only those records. One
query file (A and PTR for every name, shuffled) is replayed by dnsperf for `SECONDS`
against each in turn. Prints qps, latency and loss for both and the ratio.

    .venv/bin/python -m bench dns
"""

import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = 1000
SECONDS = 10
DNSPERF = ["-c", "4", "-q", "200", "-t", "2"]
DOMAIN = "rack.internal"


def address(i: int) -> str:
    return f"10.0.{i // 256}.{i % 256}"


def serve(port: int) -> None:
    """Our server with the 1000 names, in this process, until killed (run as a child)."""
    import asyncio
    from ipaddress import ip_address

    from netservices.dns import service
    from netservices.dns.config import DnsConfig
    from netservices.dns.zone import Host

    cfg = DnsConfig(enabled=True, port=port, reverse_zones=("10.0.0.0/16",))
    zones = service.authority(cfg, domain=DOMAIN, nameserver="appliance")

    class Inventory:
        def hosts(self):
            return [Host(f"host{i}", (ip_address(address(i)),)) for i in range(NAMES)]

    zones.load(Inventory())
    server = service.server(cfg, zones)
    server.open()
    asyncio.run(server.serve())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port),
                              "@127.0.0.1", f"host1.{DOMAIN}"], capture_output=True, text=True)
        if out.stdout.strip() == address(1):
            return
    raise RuntimeError(f"no server answering on 127.0.0.1:{port}")


def _dnsperf(port: int, queries: Path) -> dict[str, float]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(SECONDS),
           *DNSPERF]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30).stdout
    grab = {"sent": r"Queries sent:\s+(\d+)", "lost": r"Queries lost:\s+(\d+)",
            "qps": r"Queries per second:\s+([\d.]+)", "latency": r"Average Latency \(s\):\s+([\d.]+)",
            "max": r"Average Latency.*max ([\d.]+)"}
    return {k: float(re.search(p, out).group(1)) for k, p in grab.items()}


def _start_ours(port: int) -> subprocess.Popen:
    code = f"from bench.dns import serve; serve({port})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1])


def _start_dnsmasq(port: int) -> subprocess.Popen:
    records = [f"--host-record=host{i}.{DOMAIN},{address(i)}" for i in range(NAMES)]
    cmd = [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground",
           f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
           "--no-hosts", "--conf-file=/dev/null", "--log-facility=/dev/null", *records]
    return subprocess.Popen(cmd)


def main() -> int:
    missing = [t for t in ("dnsperf", "dnsmasq", "dig")
               if not (shutil.which(t) or shutil.which(t, path="/usr/sbin"))]
    if missing:
        print(f"bench dns: missing {', '.join(missing)} (make bench installs them)", file=sys.stderr)
        return 1
    lines = [f"host{i}.{DOMAIN} A" for i in range(NAMES)]
    lines += [f"{'.'.join(reversed(address(i).split('.')))}.in-addr.arpa PTR" for i in range(NAMES)]
    random.Random(5).shuffle(lines)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "queries.txt"
        queries.write_text("\n".join(lines) + "\n")
        for name, start in (("pylabs", _start_ours), ("dnsmasq", _start_dnsmasq)):
            port = _free_port()
            proc = start(port)
            try:
                _wait(port)
                results[name] = _dnsperf(port, queries)
            finally:
                proc.terminate()
                proc.wait(10)
    print(f"{'server':10} {'qps':>10} {'avg ms':>8} {'max ms':>8} {'sent':>9} {'lost':>6}")
    for name, r in results.items():
        print(f"{name:10} {r['qps']:10.0f} {r['latency'] * 1e3:8.3f} {r['max'] * 1e3:8.3f} "
              f"{r['sent']:9.0f} {r['lost'] / max(r['sent'], 1):6.2%}")
    ratio = results["pylabs"]["qps"] / results["dnsmasq"]["qps"]
    print(f"ratio pylabs/dnsmasq: {ratio:.2f} (dnsperf {' '.join(DNSPERF)} -l {SECONDS}, "
          f"{len(lines)} queries: A and PTR of {NAMES} names)")
    return 0
