"""The power tasklet's libvirt driver: virsh's command lines, and a real virsh against
libvirt's built-in test driver (test:///…, in the client library itself: no libvirtd,
which this machine does not run). Each virsh call opens a fresh test connection, so a
domain's state does not carry from one call to the next: the tests check what each
action ran and reported, and that missing pieces are said plainly."""

import importlib.util

import pytest

from appliance.tasklets import Engine
from appliance.tasklets.engine import BUILTIN
from tests.fixtures.tools import require_tool

DOMAINS = """<node>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <name>vm-off</name><memory>65536</memory><os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <name>vm-paused</name><memory>65536</memory><os><type>hvm</type></os>
    <test:runstate>3</test:runstate>
  </domain>
  <domain type="test"><name>vm-on</name><memory>65536</memory><os><type>hvm</type></os></domain>
</node>
"""


def _virsh_module():
    spec = importlib.util.spec_from_file_location("power_virsh", BUILTIN / "_virsh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


virsh = _virsh_module()

ARGV = {
    "status": (("status", "vm1", None), ["virsh", "--quiet", "domstate", "--domain", "vm1"]),
    "on": (("on", "vm1", None), ["virsh", "--quiet", "start", "--domain", "vm1"]),
    "off": (("off", "vm1", None), ["virsh", "--quiet", "shutdown", "--domain", "vm1"]),
    "forced off": (("kill", "vm1", None), ["virsh", "--quiet", "destroy", "--domain", "vm1"]),
    "reset": (("reset", "vm1", None), ["virsh", "--quiet", "reset", "--domain", "vm1"]),
    "resume": (("resume", "vm1", None), ["virsh", "--quiet", "resume", "--domain", "vm1"]),
    "with a URI": (("on", "vm1", "qemu+ssh://host/system"),
                   ["virsh", "--quiet", "--connect", "qemu+ssh://host/system", "start", "--domain", "vm1"]),
    "a name like an option": (("on", "--help", None), ["virsh", "--quiet", "start", "--domain", "--help"]),
}


@pytest.mark.parametrize("args, expected", ARGV.values(), ids=ARGV.keys())
def test_virsh_command_lines(args, expected):
    assert virsh.argv(*args) == expected


def test_an_unknown_virsh_action_is_refused():
    with pytest.raises(ValueError, match="unknown virsh action"):
        virsh.argv("hibernate", "vm1")


@pytest.fixture(scope="module")
def engine():
    require_tool("virsh")
    return Engine.load([], timeout=30)


@pytest.fixture
def uri(tmp_path):
    path = tmp_path / "domains.xml"
    path.write_text(DOMAINS)
    return f"test://{path}"


def power(engine, **params):
    [result] = engine.execute(["power"], {"driver": "libvirt", **params})
    return result


CASES = {
    "status on": ({"action": "status", "domain": "vm-on"}, ("on", "running", False)),
    "status off": ({"action": "status", "domain": "vm-off"}, ("off", "shut off", False)),
    "status paused": ({"action": "status", "domain": "vm-paused"}, ("paused", "paused", False)),
    "on starts": ({"action": "on", "domain": "vm-off"}, ("on", "started", True)),
    "on resumes": ({"action": "on", "domain": "vm-paused"}, ("on", "resumed", True)),
    "on when on": ({"action": "on", "domain": "vm-on"}, ("on", "running", False)),
    "off": ({"action": "off", "domain": "vm-on"}, ("on", "shutdown requested", True)),
    "forced off": ({"action": "off", "domain": "vm-on", "force": True}, ("off", "destroyed", True)),
    "off when off": ({"action": "off", "domain": "vm-off"}, ("off", "shut off", False)),
    "reset": ({"action": "reset", "domain": "vm-on"}, ("on", "reset", True)),
}


@pytest.mark.parametrize("params, expected", CASES.values(), ids=CASES.keys())
def test_actions_through_a_real_virsh(engine, uri, params, expected):
    result = power(engine, uri=uri, **params)
    assert result.status == "ok", result.error
    assert (result.value["state"], result.value["detail"], result.value["changed"]) == expected


FAILURES = {
    "unknown domain": ({"action": "status", "domain": "nope"}, "failed to get domain 'nope'"),
    "reset when off": ({"action": "reset", "domain": "vm-off"}, "domain vm-off is shut off"),
    "no domain": ({"action": "status"}, '"domain" must be a non-empty string'),
}


@pytest.mark.parametrize("params, reason", FAILURES.values(), ids=FAILURES.keys())
def test_failures_say_why(engine, uri, params, reason):
    result = power(engine, uri=uri, **params)
    assert result.status == "failed" and reason in result.error.strip().splitlines()[-1]


def test_no_libvirtd_to_talk_to_is_said_plainly(engine):
    result = power(engine, action="status", domain="vm1",
                   uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    last = result.error.strip().splitlines()[-1]
    assert result.status == "failed"
    assert "failed to connect to the hypervisor" in last and "is libvirtd running" in last


def test_no_virsh_installed_is_said_plainly(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # the worker inherits it: no virsh on it
    result = power(engine, action="on", domain="vm1")
    assert result.status == "failed"
    assert "virsh is not installed (Debian package libvirt-clients)" in result.error
