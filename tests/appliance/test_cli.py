"""The `appliance` command as a user runs it: a real process, real sockets, real signals."""

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from appliance.config import validate
from tests.fixtures.servers import free_port, wait_for

VALUE = r'("([^"\\]|\\.)*"|[^\s"]+)'
LOGFMT = re.compile(rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z level=(debug|info|warning|error) "
                    rf"logger=\S+ msg={VALUE}( \w+={VALUE})*$")


def appliance(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True,
                          text=True, timeout=60, **kwargs)


def start(*args, netns=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "appliance", *args]
    if netns is not None:
        return netns.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write(tmp_path, text: str):
    path = tmp_path / "appliance.toml"
    path.write_text(textwrap.dedent(text))
    return path


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture
def app_config(tmp_path):
    port = free_port()
    return write(tmp_path, f"[appserver]\nlisten = \"127.0.0.1\"\nport = {port}\n"), port


def test_help_lists_the_commands():
    result = appliance("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "config" in result.stdout


def test_version():
    assert re.fullmatch(r"appliance \d+\.\d+\.\d+\n", appliance("--version").stdout)


def test_config_check_ok(app_config):
    path, _ = app_config
    result = appliance("config", "check", "-c", str(path))
    assert (result.returncode, result.stdout) == (0, f"{path}: ok; components: appserver\n")


def test_config_check_names_every_bad_key(tmp_path):
    path = write(tmp_path, """
        [dhcp]
        range = ["10.0.0.1", "10.0.0.300"]
        [appserver]
        port = 0
    """)
    result = appliance("config", "check", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"appliance: config {path}:\n"
        '  dhcp.range[1]: "10.0.0.300" is not an IPv4 address\n'
        "  appserver.port: 0 should be greater than or equal to 1\n"
    )


def test_config_check_accepts_every_table_enabled(tmp_path):
    # every table has its component now: the "this version has no X component yet" refusal
    # cannot be reached through a config (a table that is not in Config is a bad key)
    names = list(validate({}).components())  # every table, in start order
    assert "tasklets" in names
    needs = {"dhcp": 'interface = "eth9"\nsubnet = "10.0.0.0/24"\nrange = ["10.0.0.100", "10.0.0.200"]\n'}
    path = write(tmp_path, "".join(f"[{name}]\nenabled = true\n{needs.get(name, '')}" for name in names))
    result = appliance("config", "check", "-c", str(path))
    assert (result.returncode, result.stdout) == (0, f"{path}: ok; components: {', '.join(names)}\n")


def test_config_from_environment(app_config):
    path, _ = app_config
    result = appliance("config", "check", env={"APPLIANCE_CONFIG": str(path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and str(path) in result.stdout


def test_missing_config_says_how_to_name_one(tmp_path):
    result = appliance("config", "check", env={"APPLIANCE_CONFIG": str(tmp_path / "none.toml")})
    assert result.returncode == 2
    assert "cannot read: No such file or directory" in result.stderr


def test_config_show_fills_in_defaults(app_config):
    path, port = app_config
    result = appliance("config", "show", "-c", str(path))
    assert result.returncode == 0
    assert f"port = {port}" in result.stdout and "lease_time = 3600" in result.stdout


def _stop(proc, sig=signal.SIGTERM):
    began = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, time.monotonic() - began, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_health_and_stops_on_signal(app_config, sig):
    path, port = app_config
    proc = start("run", "-c", str(path))
    assert wait_for(lambda: healthy(f"http://127.0.0.1:{port}/api/v1/health"), timeout=15)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health").read().decode()
    assert '"appserver":{"state":"running"' in body
    code, took, err = _stop(proc, sig)
    assert code == 0 and took < 5, err
    lines = err.splitlines()
    assert lines and all(LOGFMT.match(line) for line in lines), err
    assert any("msg=component.stopped component=appserver" in line for line in lines)
    assert not healthy(f"http://127.0.0.1:{port}/api/v1/health")


def test_run_exits_with_a_clear_message_when_the_port_is_taken(app_config):
    path, port = app_config
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = appliance("run", "-c", str(path))
    assert result.returncode == 1
    assert (f"appliance: cannot start appserver: cannot listen on tcp 127.0.0.1:{port}: "
            "Address already in use\n") in result.stderr


def test_run_only_starts_a_disabled_component(tmp_path):
    port = free_port()
    path = write(tmp_path, f"[appserver]\nenabled = false\nport = {port}\n")
    proc = start("run", "-c", str(path), "--only", "appserver")
    assert wait_for(lambda: healthy(f"http://127.0.0.1:{port}/api/v1/health"), timeout=15)
    assert _stop(proc)[0] == 0


@pytest.mark.parametrize("only,message", [
    ("dhcp", "dhcp.interface: must be set when dhcp is enabled"),
    ("dsn", "--only: unknown component 'dsn' (did you mean dns?)"),
])
def test_run_only_refuses_what_cannot_run(app_config, only, message):
    result = appliance("run", "-c", str(app_config[0]), "--only", only)
    assert result.returncode == 2 and message in result.stderr


def test_run_without_dhcp_interface_never_starts(tmp_path):
    path = write(tmp_path, '[dhcp]\nenabled = true\nsubnet = "10.0.0.0/24"\n')
    result = appliance("run", "-c", str(path))
    assert result.returncode == 2
    assert "dhcp.interface: must be set when dhcp is enabled" in result.stderr


def test_run_inside_a_namespace_serves_the_segment(tmp_path, segment):
    """The appliance on a private segment answers a machine plugged into the same bridge."""
    seg = segment(hosts=2)
    appliance_ns, machine = seg.hosts
    path = write(tmp_path, f'[appserver]\nlisten = "{seg.address(0)}"\nport = 8000\n')
    proc = start("run", "-c", str(path), netns=appliance_ns)
    url = f"http://{seg.address(0)}:8000/api/v1/health"

    def machine_sees_it():
        return machine.run(["curl", "-sf", "-m", "2", url], check=False).returncode == 0

    assert wait_for(machine_sees_it, timeout=15)
    assert not healthy(url), "reachable from outside the namespace"
    assert _stop(proc)[0] == 0
