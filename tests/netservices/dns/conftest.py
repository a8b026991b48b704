"""Fixtures of the DNS tests: a zone, a server on a private loopback port, a dnsmasq upstream."""

import asyncio
import ipaddress
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from netservices.dns import service
from netservices.dns.config import DnsConfig
from netservices.dns.zone import Authority, Host
from tests.fixtures.tools import require_tool

DATA = Path(__file__).parents[2] / "data" / "dns"
DOMAIN = "rack.internal"
DEBS = {"dig": "bind9-dnsutils", "kdig": "knot-dnsutils", "dnsmasq": "dnsmasq-base",
        "dnsperf": "dnsperf"}
RECORDS = (
    "_xmpp-client._tcp SRV 0 0 5222 appliance",
    "www CNAME web1",
    "alias CNAME www",
    "outside CNAME www.example.org.",
    'note TXT "hello world" "second string"',
)


def tool(name: str) -> str:
    """The path of a DNS tool; fails the test (never skips) naming its Debian package."""
    if not (shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")):
        pytest.fail(f"{name} not found (Debian package {DEBS[name]}); run `make test` to install it")
    return require_tool(name)


def make_zones(records=RECORDS, hosts=None, **cfg) -> Authority:
    """rack.internal served by appliance (10.0.0.1), web1 (10.0.0.11, fd00::11), db1."""
    config = DnsConfig(records=records, reverse_zones=("10.0.0.0/24", "fd00::/64"), **cfg)
    zones = service.authority(config, domain=DOMAIN, nameserver="appliance",
                              addresses=[ipaddress.ip_address("10.0.0.1")], serial=100)
    for name, addrs in (hosts or {"web1": ("10.0.0.11", "fd00::11"), "db1": ("10.0.0.12",)}).items():
        zones.set_host(Host(name, tuple(ipaddress.ip_address(a) for a in addrs)))
    return zones


class Running:
    """A DnsServer serving in its own thread and event loop, for tests that run clients."""

    def __init__(self, server, zones):
        self.server, self.zones = server, zones
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(server.serve(),), daemon=True)

    @property
    def port(self) -> int:
        return self.server.bound()[0][1]

    def call(self, fn, *args):
        """Run fn(*args) in the server's loop (zone changes) and return its result."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def stop(self):
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.thread.join(5)
        self.loop.close()


def _servers(workers: int | str):
    running = []

    def start(zones=None, **cfg) -> Running:
        zones = zones or make_zones()
        cfg.setdefault("workers", workers)
        server = service.server(DnsConfig(enabled=True, **cfg), zones, port=0)
        server.open()
        running.append(Running(server, zones))
        running[-1].thread.start()
        return running[-1]

    yield start
    for r in running:
        r.stop()


@pytest.fixture(params=[0, 2], ids=["udp-in-process", "udp-2-workers"])
def serve(request):
    """Factory: serve(zones, **DnsConfig fields) -> Running on 127.0.0.1, a free port;
    each test runs with UDP answered in the server's process and by 2 worker processes."""
    yield from _servers(request.param)


@pytest.fixture
def serve_once():
    """Like `serve`, once, with the default settings (workers "auto") unless given."""
    yield from _servers("auto")


def free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dnsmasq():
    """Factory: dnsmasq(host-records...) -> port of a dnsmasq on 127.0.0.1 only, no upstream."""
    procs = []

    def start(*host_records: str, extra=()) -> int:
        port = free_port()
        cmd = [tool("dnsmasq"), "--keep-in-foreground", f"--port={port}",
               "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
               "--conf-file=/dev/null", "--log-facility=-",
               *(f"--host-record={r}" for r in host_records), *extra]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        _wait_udp(port, procs[-1])
        return port

    yield start
    for p in procs:
        p.terminate()
        p.wait(5)


def _wait_udp(port: int, proc) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = subprocess.run(["dig", "+short", "+tries=1", "+time=1", "-p", str(port), "@127.0.0.1",
                              "probe.invalid"], capture_output=True, text=True)
        if out.returncode == 0:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"dnsmasq exited: {proc.stderr.read().decode()}")
    raise RuntimeError("dnsmasq did not start")
