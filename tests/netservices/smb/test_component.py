"""`appliance run --only smb`: serves its shares, stops within seconds with clients connected."""

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.netservices.smb.conftest import connect, sha
from tests.netservices.smb.test_smbclient import smbclient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(config) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "-c", str(config), "--only", "smb"],
                            stderr=subprocess.PIPE, text=True)
    lines, deadline = [], time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        lines.append(proc.stderr.readline())
        if "smb.listening" in lines[-1]:
            break
    return proc, lines


@pytest.fixture
def appliance(tree, tmp_path):
    port = free_port()
    config = tmp_path / "appliance.toml"
    config.write_text(f'[smb]\nenabled = true\nport = {port}\n'
                      f'shares = [{{ name = "media", path = "{tree / "media"}" }}]\n')
    proc, lines = start(config)
    assert proc.poll() is None, "".join(lines) + proc.stderr.read()
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def test_serves_and_stops_with_clients_connected(tree, appliance, tmp_path):
    proc, port = appliance
    result = smbclient(port, "media", "get boot.wim got", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha((tmp_path / "got").read_bytes()) == sha((tree / "media" / "boot.wim").read_bytes())
    idle = [connect(port) for _ in range(3)]
    assert idle[0].listPath("media", "*")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - began < 5


def test_port_in_use_stops_start_up(tree, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        config = tmp_path / "appliance.toml"
        config.write_text(f'[smb]\nenabled = true\nport = {busy.getsockname()[1]}\n')
        result = subprocess.run([sys.executable, "-m", "appliance", "run", "-c", str(config), "--only", "smb"],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot listen on tcp 127.0.0.1" in result.stderr and "in use" in result.stderr


def test_missing_share_directory_stops_start_up(tmp_path):
    config = tmp_path / "appliance.toml"
    config.write_text(f'[smb]\nenabled = true\nport = {free_port()}\n'
                      f'shares = [{{ name = "gone", path = "{tmp_path / "gone"}" }}]\n')
    result = subprocess.run([sys.executable, "-m", "appliance", "run", "-c", str(config), "--only", "smb"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "is not a directory" in result.stderr
