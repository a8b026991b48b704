"""A real PXE ROM: QEMU's BIOS iPXE ROM boots from the server on a namespace segment."""

import time

import pytest

from tests.fixtures.tools import require_tool

UUID = "12345678-9abc-def0-1234-567890abcdef"
MAC = "52:54:00:12:34:56"


@pytest.mark.slow
def test_qemu_ipxe_rom_gets_a_lease_and_its_boot_script(dhcp_segment, tmp_path):
    qemu = require_tool("qemu-system-x86_64")
    served = dhcp_segment(clients=0)
    switch = served.switch
    switch.add_tap("tap0", "br0")
    serial = tmp_path / "serial.log"
    switch.popen([qemu, "-machine", "pc,accel=tcg,graphics=off", "-m", "128", "-boot", "n", "-no-reboot",
                  "-display", "none", "-serial", f"file:{serial}", "-smbios", f"type=1,uuid={UUID}",
                  "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
                  "-device", f"e1000,netdev=n0,mac={MAC}"])
    deadline = time.monotonic() + 90
    while not _acked(served, MAC):
        assert time.monotonic() < deadline, "no lease for the VM:\n" + served.log.read_text()[-3000:]
        time.sleep(0.5)
    log = served.log.read_text()
    ack = next(line for line in log.splitlines() if "msg=dhcp.ack" in line and MAC in line)
    assert f"uuid={UUID}" in ack and "arch=0" in ack, ack
    deadline = time.monotonic() + 30  # iPXE goes on to fetch the script URL it was given
    while "http://10.77.0.1/boot/ipxe?mac=" not in serial.read_text(errors="replace"):
        assert time.monotonic() < deadline, serial.read_text(errors="replace")[-2000:]
        time.sleep(0.5)


def _acked(served, mac: str) -> bool:
    return served.lease_file.exists() and any(
        lease.mac == mac and lease.state == "bound" for lease in served.leases().values())
