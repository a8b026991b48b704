"""`appliance run --only tftp`: the root, the Debian boot loaders, a clean start and stop."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.lab.netns import alive
from tests.fixtures.tools import require_tool
from tests.netservices.tftp.conftest import sha

LOADERS = {  # name served -> file of the Debian package (ipxe, pxelinux, syslinux-common)
    "undionly.kpxe": "/usr/lib/ipxe/undionly.kpxe",
    "ipxe.efi": "/usr/lib/ipxe/ipxe.efi",
    "snponly.efi": "/usr/lib/ipxe/snponly.efi",
    "pxelinux.0": "/usr/lib/PXELINUX/pxelinux.0",
    "ldlinux.c32": "/usr/lib/syslinux/modules/bios/ldlinux.c32",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def appliance(tree, tmp_path):
    port = free_port()
    config = tmp_path / "appliance.toml"
    config.write_text(f'[tftp]\nenabled = true\nlisten = ["127.0.0.1"]\nport = {port}\n'
                      f'root = "{tree}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "-c", str(config),
                             "--only", "tftp"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stderr.readline()
        if "tftp.listening" in line:
            break
    assert proc.poll() is None, proc.stderr.read()
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_serves_root_and_debian_loaders(appliance, tree, tmp_path):
    """…from its worker processes, one per core by default, gone once it stopped."""
    port, proc = appliance
    workers = children(proc.pid)
    assert len(workers) == min(os.cpu_count(), 8)
    for name, source in {**LOADERS, "m1": str(tree / "m1")}.items():
        out = tmp_path / name
        subprocess.run([require_tool("atftp"), "--option", "blksize 1468", "-g", "-r", name,
                        "-l", str(out), "127.0.0.1", str(port)], check=True, timeout=30,
                       capture_output=True)
        assert sha(out.read_bytes()) == sha(Path(source).read_bytes()), name
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert not any(alive(pid) for pid in workers)


def test_port_in_use_stops_start_up(tree, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        config = tmp_path / "appliance.toml"
        config.write_text(f'[tftp]\nenabled = true\nport = {taken.getsockname()[1]}\n'
                          f'root = "{tree}"\n')
        result = subprocess.run([sys.executable, "-m", "appliance", "run", "-c", str(config),
                                 "--only", "tftp"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot listen on udp 127.0.0.1" in result.stderr
