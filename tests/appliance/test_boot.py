"""pxelinux configs from the inventory: the pure rendering, and the TFTP component serving them.

The same decision as the iPXE script (appliance.boot.ipxe_script): an unknown MAC enrolls
with the kernel and initrd over TFTP and BOOTIF from pxelinux (IPAPPEND 2); a known MAC
boots its local disk. QEMU running pxelinux end to end: tests/appliance/lab.
"""

import pytest

from appliance import boot
from appliance.components import Runtime
from appliance.components.tftp import build
from appliance.config import validate
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from netservices.tftp.files import Refused

MAC, SERVER, TOKEN = "52:54:00:77:00:10", "10.77.0.1:80", "enr0ll"
KNOWN = domain.Machine(guid="m1", hostname="node-770010")
CLIENT = ("10.77.0.100", 49152)

# machine -> (lines that must be there, text that must not)
CONFIGS = {
    "unknown machine enrolls over TFTP": (None, [
        "DEFAULT enroll", "KERNEL enroll/vmlinuz", "INITRD enroll/initrd.img", "IPAPPEND 2",
        f"APPEND console=tty0 console=ttyS0,115200 quiet appliance.url=http://{SERVER} appliance.token={TOKEN}",
    ], "LOCALBOOT"),
    "known machine boots its local disk": (KNOWN, ["DEFAULT local", "LOCALBOOT 0"], TOKEN),
}


@pytest.mark.parametrize("machine,lines,absent", CONFIGS.values(), ids=CONFIGS.keys())
def test_pxelinux_config(machine, lines, absent):
    text = boot.pxelinux_config(SERVER, MAC, machine, TOKEN)
    assert [line for line in lines if line not in text.splitlines() and f"  {line}" not in text.splitlines()] == []
    assert absent not in text and "PROMPT 0" in text


@pytest.fixture
def tftp(tmp_path):
    (tmp_path / "http" / "enroll").mkdir(parents=True)
    (tmp_path / "http" / "enroll" / "vmlinuz").write_bytes(b"kernel")
    cfg = validate({"node": {"address": "10.77.0.1", "state_dir": str(tmp_path)},
                    "http": {"enabled": True, "root": str(tmp_path / "http")},
                    "appserver": {"port": 80, "enroll_token": TOKEN}})
    runtime = Runtime(status=dict)
    component = build(cfg, runtime)
    runtime.store = open_store(cfg.osis, tmp_path)
    yield component.rendered, runtime.store
    runtime.store.close()


def _read(files, path):
    content = files.open(path, CLIENT)
    return content if content is None or isinstance(content, bytes) else content.read()


def test_tftp_renders_per_mac_from_the_inventory(tftp):
    files, store = tftp
    path = f"pxelinux.cfg/01-{MAC.replace(':', '-')}"
    assert b"appliance.url=http://10.77.0.1:80 " in _read(files, path)
    store.put(domain.Machine(guid="m1", hostname="node-770010", state=domain.MachineState.ENROLLED,
                             interfaces=[domain.NetworkInterface(mac=MAC, boot=True)]))
    assert b"LOCALBOOT 0" in _read(files, path) and b"node-770010" in _read(files, path)


def test_tftp_serves_the_enrollment_kernel_and_nothing_else_there(tftp):
    files, _ = tftp
    assert _read(files, "enroll/vmlinuz") == b"kernel"
    assert _read(files, "enroll/initrd.img") is None  # not built: not found
    assert _read(files, "enroll/../../etc/passwd") is None and _read(files, "pxelinux.cfg/01-zz") is None


def test_tftp_refuses_while_the_store_is_not_running(tmp_path):
    cfg = validate({"node": {"state_dir": str(tmp_path)}})
    files = build(cfg, Runtime(status=dict)).rendered
    with pytest.raises(Refused):
        files.open(f"pxelinux.cfg/01-{MAC.replace(':', '-')}", CLIENT)


# the config's sections -> where its pxelinux configs send the enrollment image
PUBLIC = {
    "app server alone": ({"node": {"address": "10.77.0.1"}, "appserver": {"port": 8080}},
                         "10.77.0.1:8080"),
    # the node image: the app server on loopback, nginx on the rack in front of it
    "behind nginx": ({"node": {"address": "10.77.0.1"},
                      "appserver": {"listen": "127.0.0.1", "port": 8080},
                      "http": {"enabled": True, "nginx": True, "listen": "0.0.0.0", "port": 8000}},
                     "10.77.0.1:8000"),
    "no node address": ({"appserver": {"listen": "127.0.0.2", "port": 8080}}, "127.0.0.2:8080"),
}


@pytest.mark.parametrize("sections,server", PUBLIC.values(), ids=PUBLIC.keys())
def test_pxelinux_sends_the_enrollment_image_where_the_api_answers(sections, server, tmp_path):
    (tmp_path / "http" / "enroll").mkdir(parents=True)
    sections = {**sections, "node": {**sections.get("node", {}), "state_dir": str(tmp_path)},
                "http": {"root": str(tmp_path / "http"), **sections.get("http", {})}}
    cfg = validate(sections)
    assert boot.public_server(cfg) == server
    runtime = Runtime(status=dict)
    component = build(cfg, runtime)
    runtime.store = open_store(cfg.osis, tmp_path)
    try:
        text = _read(component.rendered, f"pxelinux.cfg/01-{MAC.replace(':', '-')}")
    finally:
        runtime.store.close()
    assert f"appliance.url=http://{server} ".encode() in text
