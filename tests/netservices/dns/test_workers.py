"""The UDP worker processes, seen from dig and kdig on 127.0.0.1: every worker follows zone
changes, a killed worker is noticed and replaced, nothing is left listening after a stop
or when the server's process dies.

The kernel picks a worker by the client's address and port (SO_REUSEPORT): `worker_ports`
finds a client port for each worker by watching the workers' counters, then dig and kdig
ask from those ports (`-b 127.0.0.1#PORT`).
"""

import asyncio
import gc
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from prometheus_client import REGISTRY

from netservices.dns import service
from netservices.dns.config import DnsConfig
from netservices.dns.udpworker import ANSWERED, RECEIVED, RELAYED
from netservices.dns.zone import Host
from netservices.sockets import BindError
from tests.netservices.dns.conftest import free_port, make_zones, tool

NAME = "web1.rack.internal"


def ask(port, *args, source=None, client="dig"):
    """The client's full output for one query over UDP, from `source` port if given."""
    retry = "+tries=1" if client == "dig" else "+retry=0"
    bind = ["-b", f"127.0.0.1#{source}"] if source else []
    cmd = [tool(client), "@127.0.0.1", "-p", str(port), "+time=5", retry, *bind, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    return done.stdout + done.stderr


def short(port, *args, source=None, client="dig"):
    out = ask(port, "+short", *args, source=source, client=client)
    return [line for line in out.split() if not line.startswith(";")]


def counters(workers, which):
    return [workers.counter(w, which) for w in range(len(workers.slots))]


def worker_ports(server, port, name=NAME) -> dict[int, int]:
    """A client port that the kernel sends to each worker, found by trying fresh ports."""
    workers = server.udp_workers
    found: dict[int, int] = {}
    for _ in range(200):
        source = free_port()
        before = counters(workers, RECEIVED)
        assert short(port, name, source=source)  # answered, whatever the answer
        after = counters(workers, RECEIVED)
        moved = [w for w in range(len(after)) if after[w] > before[w]]
        if len(moved) == 1:
            found.setdefault(moved[0], source)
        if len(found) == len(workers.slots):
            return found
    pytest.fail(f"no client port found for some workers: {found}")


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_zone_change_is_seen_through_every_worker(serve_once):
    running = serve_once(workers=3)
    ports = worker_ports(running.server, running.port)
    workers = running.server.udp_workers
    for worker, port in ports.items():  # each worker now answers web1 from its own table
        before = workers.counter(worker, ANSWERED)
        out = ask(running.port, "WeB1.rack.internal", source=port)
        assert workers.counter(worker, ANSWERED) == before + 1
        assert "WeB1.rack.internal.\t300\tIN\tA\t10.0.0.11" in out  # the case as asked
    running.call(running.zones.set_host, Host("web1", (ipaddress.ip_address("10.0.0.99"),)))
    for port in ports.values():
        assert short(running.port, NAME, source=port) == ["10.0.0.99"]
        assert short(running.port, NAME, source=port, client="kdig") == ["10.0.0.99"]
    running.call(running.zones.remove_host, "web1")
    for port in ports.values():
        assert "status: NXDOMAIN" in ask(running.port, NAME, source=port)


def test_what_workers_cannot_answer_is_answered_by_the_server(serve_once):
    """Truncation, EDNS versions, refusals, FORMERR and garbage go through the parent."""
    hosts = {"big": tuple(f"10.0.0.{i}" for i in range(1, 81)), "web1": ("10.0.0.11",)}
    running = serve_once(make_zones(hosts=hosts), workers=2)
    port = running.port
    assert "Truncated, retrying in TCP mode" in ask(port, "+bufsize=512", "big.rack.internal")
    assert "status: BADVERS" in ask(port, "+edns=1", "+noednsneg", NAME)
    assert "status: REFUSED" in ask(port, "www.example.org")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(bytes(5000), ("127.0.0.1", port))  # longer than any query: dropped
        s.sendto(b"\x12\x34\x01\x00\x00\x01" + bytes(6), ("127.0.0.1", port))  # FORMERR
        reply = s.recv(512)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0xF == 1
    assert short(port, NAME) == ["10.0.0.11"]
    assert running.server.stats.received >= 6


def test_workers_on_ipv6_and_the_metrics_count_their_answers(serve_once):
    def answered():
        return REGISTRY.get_sample_value("dns_answered_total")

    gc.collect()  # the metrics sum the servers alive: let those of earlier tests go first
    before = answered()
    running = serve_once(listen=("::1",), workers=2)
    cmd = [tool("dig"), "@::1", "-p", str(running.port), "+time=5", "+tries=1", "+short"]
    for name in ("web1.rack.internal", "WEB1.rack.internal", "web1.rack.internal"):
        out = subprocess.run([*cmd, name], capture_output=True, text=True, timeout=20).stdout
        assert out.split() == ["10.0.0.11"]
    assert answered() - before == 3
    assert running.server.stats.answered == 3


def test_a_burst_of_new_queries_loses_none(serve_once, tmp_path):
    """2000 names never asked before, 400 at a time, to one worker: it relays them all
    to the parent (queueing what the control socket has no room for), none is lost."""
    hosts = {f"host{i}": (f"10.0.{i // 250}.{i % 250 + 1}",) for i in range(1000)}
    running = serve_once(make_zones(hosts=hosts), workers=1)
    queries = tmp_path / "queries"
    queries.write_text("".join(f"host{i}.rack.internal A\nhost{i}.rack.internal AAAA\n"
                               for i in range(1000)))
    cmd = [tool("dnsperf"), "-s", "127.0.0.1", "-p", str(running.port), "-d", str(queries),
           "-n", "1", "-c", "1", "-q", "400", "-t", "5", "-b", "4096"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    assert "Queries completed:    2000 (100.00%)" in out and "Queries lost:         0" in out
    assert "NOERROR 2000 (100.00%)" in out
    workers = running.server.udp_workers
    assert workers.counter(0, RECEIVED) == 2000 and workers.counter(0, RELAYED) >= 400


def test_a_killed_worker_is_replaced_on_the_same_socket(serve_once):
    running = serve_once(workers=2)
    ports = worker_ports(running.server, running.port)
    workers = running.server.udp_workers
    victim = workers.slots[0].proc.pid
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: workers.slots[0].proc is not None and
                    workers.slots[0].proc.pid != victim), "the killed worker was not replaced"
    assert gone(victim)  # reaped, not left a zombie
    assert short(running.port, NAME, source=ports[0]) == ["10.0.0.11"]
    assert short(running.port, NAME, source=ports[1]) == ["10.0.0.11"]


async def test_workers_that_keep_dying_stop_the_server_loudly():
    server = service.server(DnsConfig(enabled=True, workers=1), make_zones(), port=0)
    server.open()
    task = asyncio.create_task(server.serve())
    killed: set[int] = set()
    with pytest.raises(RuntimeError, match="DNS workers died 6 times"):
        for _ in range(100):
            if task.done():
                await task
            pids = set(server.udp_workers.pids()) if server.udp_workers else set()
            for pid in pids - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            await asyncio.sleep(0.1)
    assert all(gone(pid) for pid in killed)


def test_stop_leaves_no_worker_and_no_listener(serve_once):
    running = serve_once(workers=2)
    port = running.port
    assert short(port, NAME) == ["10.0.0.11"]
    assert wait_for(lambda: len(running.server.udp_workers.pids()) == 2)
    pids = running.server.udp_workers.pids()
    running.stop()
    assert all(gone(pid) for pid in pids)
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # no socket left on the port
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))


SERVER = """
import asyncio, json, sys
from netservices.dns import service
from netservices.dns.config import DnsConfig
from tests.netservices.dns.conftest import make_zones

async def main():
    server = service.server(DnsConfig(enabled=True, workers=2), make_zones(), port=0)
    server.open()
    task = asyncio.create_task(server.serve())
    while server.udp_workers is None or len(server.udp_workers.pids()) < 2:
        await asyncio.sleep(0.01)
    print(json.dumps([server.bound()[0][1], server.udp_workers.pids()]), flush=True)
    await task

asyncio.run(main())
"""


def test_workers_end_when_the_server_process_is_killed():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", SERVER], cwd=root, stdout=subprocess.PIPE,
                            text=True)
    try:
        port, pids = json.loads(proc.stdout.readline())
        assert short(port, NAME) == ["10.0.0.11"]
    finally:
        proc.kill()
        proc.wait(5)
    assert wait_for(lambda: all(gone(pid) for pid in pids)), "orphan workers left running"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_a_port_shared_by_another_reuseport_socket_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        server = service.server(DnsConfig(enabled=True, workers=2), make_zones(), port=port)
        with pytest.raises(BindError, match=f"cannot listen on udp 127.0.0.1:{port}"):
            server.open()


@pytest.mark.parametrize("value,ok", [("auto", True), (0, True), (4, True), (65, False),
                                      (-1, False), ("two", False), (True, False), (2.0, False)])
def test_workers_setting(value, ok):
    if ok:
        assert DnsConfig(workers=value).workers == value
    else:
        with pytest.raises(ValueError, match='is not "auto" or a number of worker processes'):
            DnsConfig(workers=value)
