"""Boot files over HTTP under /assets/: by the app server (labs) and by nginx (the image)."""

import os
import socket
import subprocess
import sys

import httpx
import pytest

from tests.fixtures.servers import free_port, pid_alive
from tests.fixtures.tools import require_tool

from .conftest import Appliance

KERNEL = os.urandom(3 << 20)


@pytest.fixture(scope="module")
def boot_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("http-root")
    (root / "enroll").mkdir()
    (root / "enroll" / "vmlinuz").write_bytes(KERNEL)
    (root / "enroll" / "initrd.img").write_bytes(b"initrd" * 1000)
    (root / "escape").symlink_to("/etc/passwd")
    return root


def http_toml(root, nginx=False, port=0):
    return (f'[http]\nenabled = true\nroot = "{root}"\nnginx = {str(nginx).lower()}\n'
            f'port = {port or 80}\nnginx_user = "root"\n')


@pytest.fixture(scope="module", params=["appserver", "nginx"])
def front(request, boot_root, tmp_path_factory):
    """The base URL users fetch boot files from, in each mode."""
    if request.param == "nginx":
        require_tool("nginx")
    port = free_port()
    appliance = Appliance(tmp_path_factory.mktemp(request.param),
                          http_toml(boot_root, request.param == "nginx", port))
    yield f"http://127.0.0.1:{port}" if request.param == "nginx" else appliance.base
    appliance.stop()


def test_whole_file_with_its_length(front):
    reply = httpx.get(f"{front}/assets/enroll/vmlinuz")
    assert reply.status_code == 200 and reply.content == KERNEL
    assert reply.headers["content-length"] == str(len(KERNEL))


@pytest.mark.parametrize("spec,start,end", [("bytes=0-99", 0, 99), ("bytes=1000000-1999999", 1000000, 1999999),
                                            ("bytes=-500", len(KERNEL) - 500, len(KERNEL) - 1)])
def test_range_requests(front, spec, start, end):
    reply = httpx.get(f"{front}/assets/enroll/vmlinuz", headers={"Range": spec})
    assert reply.status_code == 206 and reply.content == KERNEL[start:end + 1]
    assert reply.headers["content-range"] == f"bytes {start}-{end}/{len(KERNEL)}"
    assert reply.headers["content-length"] == str(end - start + 1)


def test_range_past_the_end(front):
    reply = httpx.get(f"{front}/assets/enroll/vmlinuz", headers={"Range": f"bytes={len(KERNEL) + 10}-"})
    assert reply.status_code == 416


@pytest.mark.parametrize("path", ["/assets/escape", "/assets/%2e%2e/appliance.toml", "/assets/enroll/",
                                  "/assets/enroll/missing", "/assets/..%2fappliance.toml"])
def test_nothing_outside_the_root_nor_listings(front, path):
    with socket.create_connection((front.split("//")[1].split(":")[0], int(front.rsplit(":", 1)[1]))) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        head = s.recv(4096).split(b"\r\n", 1)[0]
    assert head.split()[1] in (b"403", b"404", b"400"), head


def test_the_api_is_there_too(front):
    assert httpx.get(f"{front}/api/v1/system/version").json() == {"version": "0.1.0"}


def test_boot_scripts_point_back_at_the_address_and_port_the_machine_used(front):
    script = httpx.get(f"{front}/boot/ipxe").text  # iPXE without ?mac= is chained back
    assert script.startswith("#!ipxe\n") and f"chain {front}/boot/ipxe?mac=${{net0/mac}}" in script


def test_nginx_config_command(tmp_path, boot_root):
    cfg = tmp_path / "a.toml"
    cfg.write_text(http_toml(boot_root, True, 8080) + "[appserver]\nport = 9000\n")
    out = subprocess.run([sys.executable, "-m", "appliance", "nginx-config", "-c", str(cfg)],
                         capture_output=True, text=True, check=True).stdout
    assert "listen 127.0.0.1:8080;" in out and f'alias "{boot_root}/";' in out
    assert "proxy_pass http://127.0.0.1:9000;" in out and "disable_symlinks on;" in out


def test_nginx_stops_with_the_appliance(tmp_path, boot_root):
    require_tool("nginx")
    port = free_port()
    appliance = Appliance(tmp_path, http_toml(boot_root, True, port))
    pid = int((tmp_path / "nginx" / "nginx.pid").read_text())
    assert pid_alive(pid)
    appliance.stop()
    assert not pid_alive(pid) and appliance.proc.returncode == 0


def test_nginx_port_taken_stops_start_up_with_the_reason(tmp_path, boot_root):
    require_tool("nginx")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cfg = tmp_path / "a.toml"
        cfg.write_text(f'[node]\nstate_dir = "{tmp_path}"\n[appserver]\nport = {free_port()}\n'
                       + http_toml(boot_root, True, port))
        result = subprocess.run([sys.executable, "-m", "appliance", "run", "-c", str(cfg)],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "appliance: cannot start http: nginx did not start" in result.stderr
    assert "Address already in use" in result.stderr


def test_missing_root_stops_start_up(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[appserver]\nport = {free_port()}\n' + http_toml(tmp_path / "nope"))
    result = subprocess.run([sys.executable, "-m", "appliance", "run", "-c", str(cfg)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and f"[http].root {tmp_path / 'nope'} is not a directory" in result.stderr
