"""Hardware facts of this machine from /proc and /sys, as the enrollment image collects them.

Returns the keys of the enrollment document (image/enroll/facts.sh): uuid, serial,
vendor, product, board_serial, chassis_serial, cpus, cpu_model, memory_mb, disks (name,
size_bytes, serial, model, rotational) and interfaces (mac, name, driver, link), plus
hostname. A value that cannot be read (DMI serials need root) is null. params `sys` and
`proc` name other roots to read, for tests.
"""

import os
import re
import socket
from pathlib import Path

NAME = "facts"
TAGS = ("facts", "inventory")
PRIORITY = 20

_NOT_DISKS = re.compile(r"(loop|ram|zram|fd|sr|md|dm-|nbd)")


def main(params, ctx):
    sys_root, proc = Path(params.get("sys", "/sys")), Path(params.get("proc", "/proc"))
    dmi = sys_root / "class/dmi/id"
    cpuinfo = _read(proc / "cpuinfo") or ""
    meminfo = re.search(r"^MemTotal:\s*(\d+)", _read(proc / "meminfo") or "", re.M)
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    facts = {key: _attr(dmi / file) for key, file in (
        ("uuid", "product_uuid"), ("serial", "product_serial"), ("vendor", "sys_vendor"),
        ("product", "product_name"), ("board_serial", "board_serial"), ("chassis_serial", "chassis_serial"))}
    facts.update(hostname=socket.gethostname(), cpus=len(re.findall(r"^processor\s*:", cpuinfo, re.M)),
                 cpu_model=model.group(1).strip() if model else None,
                 memory_mb=int(meminfo.group(1)) // 1024 if meminfo else None,
                 disks=[_disk(d) for d in _children(sys_root / "block") if not _NOT_DISKS.match(d.name)],
                 interfaces=[_nic(n) for n in _children(sys_root / "class/net") if (n / "device").exists()])
    return facts


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _attr(path: Path) -> str | None:
    """The first line of a sysfs attribute, stripped; None when unreadable or empty."""
    text = _read(path)
    line = text.splitlines()[0].strip() if text and text.strip() else ""
    return line or None


def _children(path: Path) -> list[Path]:
    try:
        return sorted(path.iterdir())
    except OSError:
        return []


def _disk(d: Path) -> dict:
    sectors = _attr(d / "size")
    serial = _attr(d / "serial") or _attr(d / "device/serial")
    rotational = _attr(d / "queue/rotational")
    return {"name": d.name, "size_bytes": int(sectors) * 512 if sectors and sectors.isdigit() else None,
            "serial": serial, "model": _attr(d / "device/model"),
            "rotational": None if rotational is None else rotational == "1"}


def _nic(n: Path) -> dict:
    driver = os.path.realpath(n / "device/driver") if (n / "device/driver").exists() else None
    carrier = _attr(n / "carrier")
    return {"mac": _attr(n / "address"), "name": n.name, "driver": driver and os.path.basename(driver),
            "link": None if carrier is None else carrier == "1"}
