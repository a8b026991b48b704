"""End to end, with real QEMU: machines PXE-boot from the appliance, enroll, and are known.

`appliance lab up` as a user runs it (what `make run` does): BIOS machines (SeaBIOS +
QEMU's iPXE ROM, two at once), a UEFI one (OVMF's own PXE fetching ipxe.efi over
TFTP) and a BIOS one told by DHCP to boot pxelinux.0 (`--loader pxelinux`: config,
kernel and initrd over TFTP). Each must end up in the inventory with the identity QEMU gave it, resolve through
the appliance's DNS, and take the known-machine path when it boots again.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from appliance.lab import machines
from appliance.lab.netns import Netns
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.slow


def lab(lab_dir, *args, timeout=400):
    env = {**os.environ, "APPLIANCE_LAB_DIR": str(lab_dir)}
    return subprocess.run([sys.executable, "-m", "appliance", "lab", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", params=[("bios", 2, "ipxe"), ("uefi", 1, "ipxe"), ("bios", 1, "pxelinux")],
                ids=["bios-x2", "uefi", "bios-pxelinux"])
def lab_up(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lab")
    for tool in ("qemu-system-x86_64", "qemu-img", "curl", "dig", "tcpdump"):
        require_tool(tool)
    firmware, vms, loader = request.param
    result = lab(tmp_path, "up", "--vms", str(vms), "--firmware", firmware, "--loader", loader,
                 "--timeout", "240")
    try:
        assert result.returncode == 0, _failure(tmp_path, result)
        yield tmp_path, json.loads((tmp_path / "lab.json").read_text()), result.stdout
    finally:
        down = lab(tmp_path, "down", timeout=60)
        assert down.returncode == 0, down.stderr
        assert not (tmp_path / "lab.json").exists()


def _failure(lab_dir, result) -> str:
    """What a user needs to see why: the serial logs, the appliance's log and a capture."""
    logs = "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                   for p in sorted(lab_dir.glob("*.log")))
    return result.stdout + result.stderr + logs + f"\ncapture of the segment: {lab_dir / 'segment.pcap'}"


def test_machines_enroll_with_the_identity_qemu_gave_them(lab_up):
    lab_dir, state, out = lab_up
    appl = Netns(state["appliance"])
    listed = json.loads(appl.run(["curl", "-sf", "http://10.77.0.1/api/v1/machines"]).stdout)
    by_serial = {m["serial"]: m for m in listed}
    for vm in state["vms"]:
        machine = by_serial[vm["serial"]]
        assert machine["uuid"] == vm["uuid"]
        assert [d["serial"] for d in machine["disks"]] == [vm["disk_serial"]]
        assert [n["mac"] for n in machine["interfaces"]] == [vm["mac"]]
        assert machine["state"] == "ENROLLED" and machine["ip"].startswith("10.77.0.")
        fqdn = f"{machine['hostname']}.lab.test"
        assert appl.run(["dig", "+short", "@10.77.0.1", fqdn]).stdout.split() == [machine["ip"]]
        assert machine["hostname"] in out
    assert len(listed) == len(state["vms"])


def test_the_machines_booted_the_loader_asked_for(lab_up):
    lab_dir, state, out = lab_up
    log = (lab_dir / "appliance.log").read_text()
    pxelinux = "(bios, pxelinux)" in out
    for vm in state["vms"]:
        serial = (lab_dir / f"{vm['name']}.serial.log").read_text(errors="replace")
        assert ("PXELINUX" in serial) == pxelinux
        assert (f"msg=boot.script mac={vm['mac']} known=False loader=pxelinux" in log) == pxelinux
    if pxelinux:  # the enrollment image came over TFTP, not HTTP
        assert "path=enroll/vmlinuz result=done" in log and "path=enroll/initrd.img result=done" in log


def test_a_second_boot_takes_the_known_path(lab_up):
    lab_dir, state, _ = lab_up
    switch, vm = Netns(state["switch"]), state["vms"][0]
    index = int(vm["name"][2:])
    switch.ip("link", "del", f"tap{index}")
    again = machines.start(switch, index, vm["firmware"], lab_dir)
    log = lab_dir / "appliance.log"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if f"msg=boot.script mac={vm['mac']} known=True" in log.read_text():
                break
            time.sleep(1)
        assert f"msg=boot.script mac={vm['mac']} known=True" in log.read_text(), log.read_text()[-3000:]
    finally:
        os.kill(again["pid"], 9)
    appl = Netns(state["appliance"])
    listed = json.loads(appl.run(["curl", "-sf", "http://10.77.0.1/api/v1/machines"]).stdout)
    assert len(listed) == len(state["vms"])  # known, not enrolled twice


def test_the_segment_was_captured(lab_up):
    """The capture a failure points to holds the boot: DHCP and the enrollment POST."""
    lab_dir, _, _ = lab_up
    pcap = (lab_dir / "segment.pcap").read_bytes()
    assert pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4") and len(pcap) > 10_000
    assert b"/api/v1/enroll" in pcap and b"PXEClient" in pcap
