"""DNS: dnsperf against our server and dnsmasq, the same 1000-name zone, in one run.

Both serve host0 … host999.rack.internal (A) and their PTRs on 127.0.0.1, private ports;
dnsmasq with --no-resolv --no-hosts --conf-file=/dev/null and only those records; ours
as `DnsServer` with its default settings (UDP workers included), the names loaded as
inventory hosts. Two query files, each replayed by the same dnsperf command against both:
"A+PTR" (A and PTR of every name, shuffled) and "A" (the A queries only). Each case runs
`ROUNDS` times, the two servers alternating who goes first (the machine is shared, so a
drift in the background load hits both). Every run prints qps, latency, loss and the
response codes dnsperf saw; each case ends with the ratio of the summed qps.

    flock /tmp/pylabs-heavy.lock .venv/bin/python -m bench dns
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

from bench._clients import stop

NAMES = 1000
SECONDS = 6
ROUNDS = 2
DNSPERF = ["-c", "4", "-q", "200", "-t", "2"]
DOMAIN = "rack.internal"


def address(i: int) -> str:
    return f"10.0.{i // 256}.{i % 256}"


def serve(port: int) -> None:
    """Our server with the 1000 names, in this process, until killed (run as a child)."""
    import asyncio
    import signal
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

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(server.close()))
        await server.serve()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        out = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port),
                              "@127.0.0.1", f"host1.{DOMAIN}"], capture_output=True, text=True)
        if out.stdout.strip() == address(1):
            return
    raise RuntimeError(f"no server answering on 127.0.0.1:{port}")


def _dnsperf(port: int, queries: Path) -> dict:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(SECONDS),
           *DNSPERF]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30).stdout
    grab = {"sent": r"Queries sent:\s+(\d+)", "lost": r"Queries lost:\s+(\d+)",
            "qps": r"Queries per second:\s+([\d.]+)", "latency": r"Average Latency \(s\):\s+([\d.]+)",
            "max": r"Average Latency.*max ([\d.]+)"}
    result = {k: float(re.search(p, out).group(1)) for k, p in grab.items()}
    result["codes"] = re.search(r"Response codes:\s+(.*)", out).group(1).strip()
    return result


def _start_ours(port: int) -> subprocess.Popen:
    code = f"from bench.dns import serve; serve({port})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1])


def _start_dnsmasq(port: int) -> subprocess.Popen:
    records = [f"--host-record=host{i}.{DOMAIN},{address(i)}" for i in range(NAMES)]
    cmd = [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground",
           f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
           "--no-hosts", "--conf-file=/dev/null", "--log-facility=/dev/null", *records]
    return subprocess.Popen(cmd)


SERVERS = {"pylabs": _start_ours, "dnsmasq": _start_dnsmasq}


def _measure(name: str, queries: Path) -> dict:
    port = _free_port()
    proc = SERVERS[name](port)
    try:
        _wait(port, proc)
        return _dnsperf(port, queries)
    finally:
        stop(proc)


def _query_files(tmp: Path) -> dict[str, Path]:
    a = [f"host{i}.{DOMAIN} A" for i in range(NAMES)]
    ptr = [f"{'.'.join(reversed(address(i).split('.')))}.in-addr.arpa PTR" for i in range(NAMES)]
    files = {}
    for case, lines in (("A+PTR", a + ptr), ("A", list(a))):
        random.Random(5).shuffle(lines)
        files[case] = tmp / f"queries-{case}.txt"
        files[case].write_text("\n".join(lines) + "\n")
    return files


def _row(case: str, name: str, r: dict) -> str:
    return (f"{case:6} {name:8} {r['qps']:9.0f} {r['latency'] * 1e3:7.3f} {r['max'] * 1e3:7.2f} "
            f"{r['sent']:9.0f} {r['lost'] / max(r['sent'], 1):7.3%}  {r['codes']}")


def main() -> int:
    missing = [t for t in ("dnsperf", "dnsmasq", "dig")
               if not (shutil.which(t) or shutil.which(t, path="/usr/sbin"))]
    if missing:
        print(f"bench dns: missing {', '.join(missing)} (make bench installs them)", file=sys.stderr)
        return 1
    print(f"dnsperf {' '.join(DNSPERF)} -l {SECONDS}, same query file for both; "
          f"{ROUNDS} rounds per case, alternating which server goes first")
    print(f"{'case':6} {'server':8} {'qps':>9} {'avg ms':>7} {'max ms':>7} {'sent':>9} "
          f"{'lost':>7}  response codes", flush=True)
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, queries in _query_files(Path(tmp)).items():
            totals = {name: [0.0, 0.0, 0.0] for name in SERVERS}  # qps, sent, lost
            for round_ in range(ROUNDS):
                order = list(SERVERS) if round_ % 2 == 0 else list(reversed(SERVERS))
                for name in order:
                    r = _measure(name, queries)
                    print(_row(case, name, r), flush=True)
                    for i, key in enumerate(("qps", "sent", "lost")):
                        totals[name][i] += r[key]
            ours, peer = totals["pylabs"], totals["dnsmasq"]
            summary.append(f"{case:6} ratio pylabs/dnsmasq {ours[0] / peer[0]:.2f}  "
                           f"(mean qps {ours[0] / ROUNDS:.0f} vs {peer[0] / ROUNDS:.0f}; lost "
                           f"{ours[2]:.0f} of {ours[1]:.0f} vs {peer[2]:.0f} of {peer[1]:.0f})")
    print("\n".join(summary))
    return 0
