"""QEMU machines for the lab: a tap on the lab's bridge, a disk, SMBIOS identity, PXE first.

Under TCG (`/dev/kvm` exists on these hosts but hangs). BIOS machines run SeaBIOS with
QEMU's iPXE ROM on an e1000; UEFI machines run OVMF with its own PXE on virtio-net
(`romfile=` empty), which fetches ipxe.efi over TFTP. Each machine powers off when the
enrollment image is done (`-no-reboot`), so the process ending is the machine stopping.
"""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

from appliance.lab.netns import Netns

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def identity(index: int) -> dict[str, str]:
    """The MAC, serials and SMBIOS UUID of lab machine `index` (stable across labs)."""
    return {"name": f"vm{index}", "mac": f"52:54:00:77:00:{index + 16:02x}",
            "serial": f"LAB-{index:04d}", "disk_serial": f"DISK-{index:04d}",
            "uuid": str(uuid.UUID(int=0x5EED_0000_0000_4000_8000_0000_0000_0000 + index))}


def command(vm: dict, tap: str, disk: Path, log: Path, firmware: str, vars_file: Path) -> list[str]:
    qemu = ["qemu-system-x86_64", "-m", "512", "-smp", "1", "-display", "none", "-no-reboot",
            "-serial", f"file:{log}", "-boot", "n",
            "-smbios", f"type=1,manufacturer=PyLabs,product=LabMachine,serial={vm['serial']},"
                       f"uuid={vm['uuid']}",
            "-smbios", f"type=2,serial=BOARD-{vm['serial']}",
            "-smbios", f"type=3,serial=CHASSIS-{vm['serial']}",
            "-drive", f"file={disk},if=none,id=d0,format=qcow2",
            "-device", f"virtio-blk-pci,drive=d0,serial={vm['disk_serial']}",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]
    if firmware == "uefi":
        return qemu + ["-machine", "q35,accel=tcg,graphics=off",
                       "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                       "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}",
                       "-device", f"virtio-net-pci,netdev=n0,mac={vm['mac']},romfile=,bootindex=1"]
    return qemu + ["-machine", "pc,accel=tcg,graphics=off", "-device", f"e1000,netdev=n0,mac={vm['mac']}"]


def start(switch: Netns, index: int, firmware: str, workdir: Path) -> dict:
    """Power on lab machine `index` on the switch's bridge; returns what `down` needs."""
    vm = identity(index)
    tap = f"tap{index}"
    switch.add_tap(tap, "br0")
    disk, log = workdir / f"{vm['name']}.qcow2", workdir / f"{vm['name']}.serial.log"
    if not disk.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "2G"], check=True, timeout=30)
    vars_file = workdir / f"{vm['name']}.OVMF_VARS.fd"
    if firmware == "uefi":
        shutil.copyfile(OVMF_VARS, vars_file)
    log.write_bytes(b"")
    with open(workdir / f"{vm['name']}.qemu.log", "wb") as errors:
        proc = switch.popen(command(vm, tap, disk, log, firmware, vars_file), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
    return {**vm, "pid": proc.pid, "log": str(log), "started": time.time(), "firmware": firmware}
