"""The worker processes: spread of transfers, a worker killed mid-transfer, stopping with
transfers in flight, workers dying with their parent, segmentation offload falling back."""

import io
import json
import os
import signal
import subprocess
import sys
import time

from appliance.lab.netns import alive
from netservices.tftp import wire
from netservices.tftp.files import Rendered
from tests.netservices.tftp.conftest import eventually, oack_options, sha
from tests.netservices.tftp.test_interop import atftp, fetch, tftp_hpa


def test_real_clients_at_once_are_spread_over_the_workers(serve, tree, tmp_path):
    server = serve(workers=2)
    commands = [(tftp_hpa if i % 2 else atftp)(server.port, name, tmp_path / f"{name}.{i}")
                for i, name in enumerate(["m3", "m1"] * 8)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    for i, name in enumerate(["m3", "m1"] * 8):
        assert sha((tmp_path / f"{name}.{i}").read_bytes()) == sha((tree / name).read_bytes())
    served = [w.served for w in server.server.pool.workers]
    assert len(served) == 2 and min(served) > 0 and sum(served) == 16
    assert eventually(lambda: server.stats["transfer_done"] == 16)


def test_a_killed_worker_fails_its_transfers_and_is_replaced(serve, client, tree):
    server = serve(workers=1, timeout=5.0)
    pool = server.server.pool
    c = client(server.port)
    c.send(wire.request("m3"))
    data, tid = c.recv()
    assert wire.HEADER.unpack_from(data) == (wire.DATA, 1)
    killed = pool.pids[0]
    os.kill(killed, signal.SIGKILL)
    data, sender = c.recv()  # at once, not after the client's timeouts
    assert sender == tid
    assert wire.parse(data) == wire.Error(wire.NOT_DEFINED, "Transfer aborted")
    assert eventually(lambda: server.stats["transfer_crashed"] == 1)
    assert eventually(lambda: pool.pids and pool.pids[0] != killed, timeout=30)
    assert client(server.port).get("k100") == (tree / "k100").read_bytes()
    assert not alive(killed)


def test_a_hung_worker_is_killed_its_transfers_fail_and_it_is_replaced(serve, client, tree):
    server = serve(workers=1, timeout=5.0)
    pool = server.server.pool
    pool.hung = 2.0
    c = client(server.port, timeout=15)
    c.send(wire.request("m3"))
    data, tid = c.recv()
    assert wire.HEADER.unpack_from(data) == (wire.DATA, 1)
    hung = pool.pids[0]
    os.kill(hung, signal.SIGSTOP)  # alive, but its loop no longer turns
    try:
        data, sender = c.recv()  # within `hung` seconds (and a watch), not at the client's timeouts
        assert sender == tid
        assert wire.parse(data) == wire.Error(wire.NOT_DEFINED, "Transfer aborted")
        assert eventually(lambda: pool.pids and pool.pids[0] != hung, timeout=30)
        assert client(server.port).get("k100") == (tree / "k100").read_bytes()
        assert eventually(lambda: not alive(hung))
    finally:
        if alive(hung):
            os.kill(hung, signal.SIGKILL)


def test_stop_with_transfers_in_flight(serve, client):
    server = serve(workers=2, timeout=5.0)
    workers = server.server.pool.pids
    for _ in range(6):  # each gets its first block, then never acknowledges it
        c = client(server.port)
        c.send(wire.request("m3"))
        assert wire.HEADER.unpack_from(c.recv()[0]) == (wire.DATA, 1)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 5
    assert server.stats["transfer_stopped"] == 6
    assert eventually(lambda: not any(alive(pid) for pid in workers))


def test_workers_die_with_their_parent(tree):
    proc = subprocess.Popen([sys.executable, "-m", "tests.netservices.tftp.standalone", str(tree),
                             "127.0.0.1", "workers=2"], stdout=subprocess.PIPE, text=True)
    try:
        workers = json.loads(proc.stdout.readline())["workers"]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
    finally:
        proc.kill()  # no chance to stop them
        proc.wait()
    assert eventually(lambda: not any(alive(pid) for pid in workers), timeout=5)


def test_window_larger_than_the_mtu_falls_back_to_one_send_per_block(netns, tree, tmp_path):
    """With segmentation_offload on, windows go out in one offloaded send; the kernel
    refuses segments larger than the MTU (EINVAL): such a transfer sends block by block,
    and the kernel fragments each datagram."""
    ns = netns()
    ns.ip("link", "set", "lo", "mtu", "1500")
    ns.ip("link", "set", "lo", "up")
    server = ns.popen([sys.executable, "-m", "tests.netservices.tftp.standalone", str(tree),
                       "127.0.0.1", "workers=1", "max_blksize=65464", "segmentation_offload=true"],
                      stdout=subprocess.PIPE,
                      text=True, cwd=os.getcwd())
    port = json.loads(server.stdout.readline())["port"]
    for blksize in (1468, 4096):  # 1468 fits the MTU (offloaded), 4096 does not
        out = tmp_path / f"m1.{blksize}"
        cmd = ns.command(atftp(port, "m1", out, blksize=blksize, windowsize=8))
        assert sha(fetch(cmd, out)) == sha((tree / "m1").read_bytes())


def test_rendered_bytes_and_streams_reach_the_workers_whole(serve, client):
    """Rendered content goes to a worker as a memory file: its size is known (tsize)."""
    payload = os.urandom(300_000)
    server = serve(Rendered({"bytes": lambda c: payload, "stream": lambda c: io.BytesIO(payload)}),
                   workers=2)
    for name in ("bytes", "stream"):
        c = client(server.port)
        c.send(wire.request(name, {"tsize": "0"}))
        assert oack_options(c.recv()[0]) == {"tsize": str(len(payload))}
        assert client(server.port).get(name, {"blksize": "1468"}) == payload


def test_requests_beyond_max_transfers_wait_unanswered_for_a_free_slot(serve, client):
    server = serve(workers=2, max_transfers=2, timeout=5.0)
    first, second, third = client(server.port), client(server.port), client(server.port)
    for c in (first, second):
        c.send(wire.request("m3"))
        assert wire.HEADER.unpack_from(c.recv()[0]) == (wire.DATA, 1)
    third.send(wire.request("k100"))
    assert third.silent(0.5)  # no ERROR: a PXE ROM would give up its boot on one
    assert server.stats["request_busy"] == 1
    first.send(wire.error(0, "done with it"))
    assert eventually(lambda: server.stats["transfer_failed"] == 1)
    third.send(wire.request("k100"))  # as a client retransmits its request
    assert wire.HEADER.unpack_from(third.recv()[0]) == (wire.DATA, 1)


def test_busy_polling_workers_serve_every_client_the_same(serve, tree, tmp_path):
    server = serve(workers=1, busy_poll=200)
    for options in ({"blksize": 1468}, {"blksize": 1468, "windowsize": 8}, {}):
        out = tmp_path / "m3"
        assert sha(fetch(atftp(server.port, "m3", out, **options), out)) == sha((tree / "m3").read_bytes())
    out = tmp_path / "k100"
    assert sha(fetch(tftp_hpa(server.port, "k100", out), out)) == sha((tree / "k100").read_bytes())


def test_a_client_gone_ends_its_transfer_at_the_first_retransmission(serve, client):
    """ICMP port unreachable reaches the connected transfer socket: no retries into the void."""
    server = serve(timeout=0.2, max_timeout=8.0, retries=10)
    c = client(server.port)
    c.send(wire.request("m3"))
    assert wire.HEADER.unpack_from(c.recv()[0]) == (wire.DATA, 1)
    c.close()
    assert eventually(lambda: server.stats["transfer_failed"] == 1, timeout=3)
    assert server.stats["retransmitted"] == 1 and server.stats["transfer_timeout"] == 0
