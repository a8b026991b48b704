"""The server over real UDP sockets on loopback, driven packet by packet."""

import io
import threading
import time

import pytest

from netservices.tftp import wire
from netservices.tftp.files import Chain, Directory, Rendered
from tests.netservices.tftp.conftest import SIZES, eventually, oack_options, sha

TRAVERSAL = {
    "dot-dot": "../secret",
    "deep dot-dot": "boot/sub/../../../secret",
    "absolute": "/etc/passwd",
    "backslash dot-dot": "..\\secret",
    "symlink out": "link-out",
    "symlink absolute": "link-abs",
    "sibling prefix": "link-sibling/file",
    "fifo": "fifo",
    "directory": "boot",
}


@pytest.mark.parametrize("path", TRAVERSAL.values(), ids=TRAVERSAL.keys())
def test_traversal_gets_access_violation(serve, client, path):
    c = client(serve().port)
    c.send(wire.request(path))
    data, _ = c.recv()
    assert wire.parse(data) == wire.Error(wire.ACCESS_VIOLATION, "Access violation")


def test_nul_in_filename_never_reaches_the_files(serve, client):
    # On the wire a NUL ends the name: "one\0../x" is the name "one" and mode "../x".
    c = client(serve().port)
    c.send(b"\0\x01one\0../../secret\0")
    assert wire.parse(c.recv()[0]) == wire.Error(wire.ILLEGAL_OPERATION, "Unsupported mode")


def test_write_request_refused_and_nothing_written(serve, client, tree):
    c = client(serve().port)
    c.send(wire.request("new-file", opcode=wire.WRQ))
    assert wire.parse(c.recv()[0]) == wire.Error(wire.ACCESS_VIOLATION, "Read-only server")
    assert not (tree / "new-file").exists()


def test_missing_file_not_found(serve, client):
    c = client(serve().port)
    c.send(wire.request("no-such-file"))
    assert wire.parse(c.recv()[0]) == wire.Error(wire.NOT_FOUND, "File not found")


GARBAGE = {
    "empty": b"",
    "short": b"\0",
    "bad opcode": b"\0\x09abc\0",
    "unterminated rrq": b"\0\x01file",
    "bad option value bytes": b"\0\x01one\0octet\0blksize\0\xff\0",
    "random": bytes(range(256)) * 3,
    "stray ack": b"\0\x04\0\x01",
    "stray error": b"\0\x05\0\x01x\0",
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_dropped_unanswered_and_serving_goes_on(serve, client, tree, data):
    server = serve()
    c = client(server.port)
    c.send(data)
    assert c.silent(0.3)
    assert client(server.port).get("b513") == (tree / "b513").read_bytes()


def test_one_bad_packet_cannot_kill_the_server(serve, client, tree):
    """The tftpy server's one-packet crash: blksize=abc; and a renderer raising."""
    server = serve()
    c = client(server.port)
    c.send(wire.request("one", {"blksize": "abc"}))
    assert c.get("one") == (tree / "one").read_bytes()  # option ignored, served
    c2 = client(server.port)
    c2.send(wire.request("broken"))
    assert wire.parse(c2.recv()[0]) == wire.Error(wire.NOT_DEFINED, "Internal error")
    assert client(server.port).get("k100") == (tree / "k100").read_bytes()


def test_bytesio_and_rendered_files(serve, client):
    """The tftpy server crashed on a BytesIO at session end (tftpy issue 155)."""
    payload = bytes(range(256)) * 40
    files = Rendered({r"mem": lambda c: io.BytesIO(payload),
                      r"pxelinux\.cfg/01-(?P<mac>[0-9a-f-]{17})": lambda c, mac: f"{mac} {c[0]}".encode()})
    server = serve(files)
    assert client(server.port).get("mem", {"blksize": "1000", "tsize": "0"}) == payload
    assert client(server.port).get("pxelinux.cfg/01-52-54-00-12-34-56") == b"52-54-00-12-34-56 127.0.0.1"
    assert client(server.port).get("mem") == payload


@pytest.mark.parametrize("name", SIZES)
def test_options_negotiated_and_file_intact(serve, client, tree, name):
    c = client(serve().port)
    c.send(wire.request(name, {"blksize": "1468", "tsize": "0", "timeout": "3", "windowsize": "4"}))
    data, _ = c.recv()
    assert oack_options(data) == {"blksize": "1468", "tsize": str(SIZES[name]), "timeout": "3",
                                  "windowsize": "4"}
    c.send(wire.ack(0))
    content, last = b"", 0
    while True:
        data, _ = c.recv()
        opcode, block = wire.HEADER.unpack_from(data)
        assert (opcode, block) == (wire.DATA, last + 1)
        content += data[4:]
        last = block
        if len(data) - 4 < 1468:
            c.send(wire.ack(block))
            break
        if block % 4 == 0:
            c.send(wire.ack(block))
    assert sha(content) == sha((tree / name).read_bytes())


def test_blksize_capped_by_config(serve, client):
    c = client(serve(max_blksize=1024).port)
    c.send(wire.request("m1", {"blksize": "65464"}))
    assert oack_options(c.recv()[0]) == {"blksize": "1024"}


def test_wrong_tid_gets_error_5_and_transfer_goes_on(serve, client, tree):
    server = serve()
    c = client(server.port)
    c.send(wire.request("b2936"))
    data, tid = c.recv()
    assert wire.HEADER.unpack_from(data) == (wire.DATA, 1)
    stranger = client(server.port)
    stranger.send(wire.ack(1), to=tid)
    assert wire.parse(stranger.recv()[0]) == wire.Error(wire.UNKNOWN_TID, "Unknown transfer ID")
    content = data[4:]
    c.send(wire.ack(1))
    while len(data) - 4 == 512:
        data, sender = c.recv()
        assert sender == tid
        content += data[4:]
        c.send(wire.ack(wire.HEADER.unpack_from(data)[1]))
    assert content == (tree / "b2936").read_bytes()
    assert eventually(lambda: server.stats["wrong_tid"] == 1)


def test_duplicate_acks_get_no_duplicate_data(serve, client):
    server = serve(timeout=5.0)
    c = client(server.port)
    c.send(wire.request("k100"))
    c.recv()
    c.send(wire.ack(1))
    c.send(wire.ack(1))
    c.send(wire.ack(1))
    assert wire.HEADER.unpack_from(c.recv()[0]) == (wire.DATA, 2)
    assert c.silent(0.5)  # no second DATA 2
    c.send(wire.ack(2))
    assert wire.HEADER.unpack_from(c.recv()[0]) == (wire.DATA, 3)


def test_retransmits_with_backoff_then_gives_up(serve, client):
    server = serve(timeout=0.2, max_timeout=0.4, retries=3)
    c = client(server.port)
    c.send(wire.request("k100"))
    arrivals = []
    began = time.monotonic()
    for _ in range(4):
        data, _ = c.recv()
        assert wire.HEADER.unpack_from(data) == (wire.DATA, 1)
        arrivals.append(time.monotonic() - began)
    assert c.silent(1.2)  # given up after 3 retransmissions
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert 0.15 < gaps[0] < 0.35 and 0.3 < gaps[1] < 0.55 and 0.3 < gaps[2] < 0.55
    assert eventually(lambda: server.stats["transfer_timeout"] == 1)


def test_duplicate_request_starts_one_transfer(serve, client):
    server = serve(timeout=5.0)
    c = client(server.port)
    c.send(wire.request("k100"))
    c.send(wire.request("k100"))
    c.recv()
    assert c.silent(0.4)
    assert server.stats["duplicate_request"] == 1


def test_client_error_ends_the_transfer(serve, client):
    server = serve()
    c = client(server.port)
    c.send(wire.request("m1", {"blksize": "1024"}))
    c.recv()
    c.send(wire.error(8, "no thanks"))
    assert c.silent(0.8)
    assert eventually(lambda: server.stats["transfer_failed"] == 1)


def test_many_concurrent_transfers_without_a_thread_per_client(serve, client, tree):
    server = serve()
    threads_before = threading.active_count()
    results, workers = {}, []

    def fetch(i):
        results[i] = sha(client(server.port, timeout=5).get("k100", {"blksize": "1468"}))

    for i in range(60):
        workers.append(threading.Thread(target=fetch, args=(i,)))
        workers[-1].start()
    peak = threading.active_count()
    while any(w.is_alive() for w in workers):
        peak = max(peak, threading.active_count())
        time.sleep(0.005)
    assert list(results.values()) == [sha((tree / "k100").read_bytes())] * 60
    # Beside the 60 client threads: at most the open/render executor's small pool.
    assert peak - 60 - threads_before <= 8


def test_stop_releases_the_port(serve):
    import socket
    server = serve()
    port = server.port
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_netascii_converts_line_ends(serve, client):
    c = client(serve().port)
    c.send(wire.request("text.cfg", mode="netascii"))
    data, _ = c.recv()
    assert data[4:] == b"DEFAULT menu\r\nLABEL a\r\0\r\n  KERNEL k\r\n"


def test_chain_with_directory(serve, client, tree):
    files = Chain(Rendered({r"x": lambda c: b"X"}), Directory(tree))
    server = serve(files)
    assert client(server.port).get("x") == b"X"
    assert client(server.port).get("one") == (tree / "one").read_bytes()
