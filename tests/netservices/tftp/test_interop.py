"""Real TFTP clients against the server: tftp-hpa, atftp, curl, busybox; a lossy link."""

import subprocess

import pytest

from tests.fixtures.tools import require_tool
from tests.netservices.tftp.conftest import eventually, sha
from tests.netservices.tftp.lossy import LossyProxy

FILES = ["empty", "one", "b512", "b1468", "b2936", "m1", "m3"]


def fetch(cmd: list[str], out, timeout: float = 60) -> bytes:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_bytes()


def tftp_hpa(port, name, out, mode="binary"):
    return [require_tool("tftp"), "-m", mode, "127.0.0.1", str(port), "-c", "get", name, str(out)]


def atftp(port, name, out, **options):
    opts = [a for k, v in options.items() for a in ("--option", f"{k} {v}")]
    return [require_tool("atftp"), *opts, "-g", "-r", name, "-l", str(out), "127.0.0.1", str(port)]


def curl(port, name, out, blksize=None, options=True):
    extra = ["--tftp-blksize", str(blksize)] if blksize else []
    extra += [] if options else ["--tftp-no-options"]
    return [require_tool("curl"), "-sS", *extra, "-o", str(out), f"tftp://127.0.0.1:{port}/{name}"]


def busybox(port, name, out, blksize=None):
    extra = ["-b", str(blksize)] if blksize else []
    return [require_tool("busybox"), "tftp", *extra, "-g", "-r", name, "-l", str(out),
            "127.0.0.1", str(port)]


CLIENTS = {
    "tftp-hpa": lambda port, name, out: tftp_hpa(port, name, out),
    "atftp": lambda port, name, out: atftp(port, name, out),
    "atftp blksize 1468": lambda port, name, out: atftp(port, name, out, blksize=1468, tsize=0),
    "atftp windowsize 8": lambda port, name, out: atftp(port, name, out, blksize=1468, windowsize=8),
    "atftp windowsize 4 (OVMF)": lambda port, name, out: atftp(port, name, out, blksize=1468,
                                                               windowsize=4, tsize=0),
    "atftp blksize 65464": lambda port, name, out: atftp(port, name, out, blksize=65464),
    "curl": lambda port, name, out: curl(port, name, out),
    "curl blksize 1468": lambda port, name, out: curl(port, name, out, 1468),
    "curl blksize 8192": lambda port, name, out: curl(port, name, out, 8192),
    "busybox": lambda port, name, out: busybox(port, name, out),
    "busybox blksize 1468": lambda port, name, out: busybox(port, name, out, 1468),
}


@pytest.mark.parametrize("client", CLIENTS.values(), ids=CLIENTS.keys())
def test_clients_download_every_file_intact(serve, tree, tmp_path, client):
    server = serve()
    # curl 7.88 fails on an empty file with options from any server (tftpd-hpa too):
    # "getpeername() failed with errno 107".
    for name in FILES[1:] if "curl" in client(0, "", tmp_path)[0] else FILES:
        out = tmp_path / name
        assert sha(fetch(client(server.port, name, out), out)) == sha((tree / name).read_bytes()), name


def test_tftp_hpa_netascii_mode(serve, tree, tmp_path):
    """tftp-hpa's default mode is netascii: line ends come back as they were."""
    out = tmp_path / "text"
    assert fetch(tftp_hpa(serve().port, "text.cfg", out, mode="netascii"), out) == \
        (tree / "text.cfg").read_bytes()


def test_clients_see_errors(serve, tmp_path):
    port = serve().port
    for cmd in (atftp(port, "../secret", tmp_path / "a"), curl(port, "nope", tmp_path / "b"),
                busybox(port, "link-out", tmp_path / "c")):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
    assert not (tmp_path / "b").exists() or (tmp_path / "b").read_bytes() == b""


LOSSY = {
    "atftp lock-step": (lambda port, out: atftp(port, "k100", out, blksize=1468), "k100", 1468, 1, 7, 5),
    "atftp windowsize 8": (lambda port, out: atftp(port, "m1", out, blksize=1468, windowsize=8),
                           "m1", 1468, 8, 40, 9),
    "tftp-hpa": (lambda port, out: tftp_hpa(port, "k100", out), "k100", 512, 1, 20, 15),
    # curl always asks for timeout >= 1 s (RFC 2349; 6 s by default), which the server
    # honours: without options the server's own 0.1 s applies and the test stays short.
    "curl": (lambda port, out: curl(port, "k100", out, options=False), "k100", 512, 1, 20, 20),
}


@pytest.mark.parametrize("client,name,blksize,window,to_client,to_server", LOSSY.values(),
                         ids=LOSSY.keys())
def test_lossy_link_completes_intact(serve, tree, tmp_path, client, name, blksize, window,
                                     to_client, to_server):
    """Every Nth datagram dropped each way: retransmissions recover, nothing is doubled."""
    server = serve(timeout=0.1, max_timeout=0.4, retries=8)
    out = tmp_path / name
    with LossyProxy(server.port, drop_to_client=to_client, drop_to_server=to_server) as proxy:
        assert sha(fetch(client(proxy.port, out), out, timeout=60)) == sha((tree / name).read_bytes())
    assert proxy.dropped["to_client"] >= 2 and proxy.dropped["to_server"] >= 2
    # Its counters arrive with its end (after retries, when the last ACK was the one lost).
    assert eventually(lambda: sum(n for k, n in server.stats.items() if k.startswith("transfer_")),
                      timeout=10)
    # No Sorcerer's Apprentice: what is sent stays in proportion to the blocks and losses.
    losses = sum(proxy.dropped.values())
    blocks = len((tree / name).read_bytes()) // blksize + 1
    assert server.stats["retransmitted"] <= (losses + 1) * window
    assert proxy.seen["to_client"] <= blocks + 1 + (losses + 1) * window


def test_ipv6_listener(serve, tree, tmp_path):
    server = serve(listen=("::1",))
    out = tmp_path / "k100"
    cmd = [require_tool("curl"), "-sS", "--tftp-blksize", "1468", "-o", str(out),
           f"tftp://[::1]:{server.port}/k100"]
    assert sha(fetch(cmd, out)) == sha((tree / "k100").read_bytes())
