"""Reading a built disk without mounting it: its partition table (sfdisk), a partition as
a file, files inside an ext4 image (debugfs)."""

import json
import subprocess
from pathlib import Path

from appliance.image.disk import MIB
from tests.fixtures.tools import require_tool


def partitions(disk: Path) -> list[dict]:
    """The partition table (sfdisk --json): start and size in sectors, type, bootable."""
    out = subprocess.run([require_tool("sfdisk"), "--json", str(disk)], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return json.loads(out)["partitiontable"]["partitions"]


def extract(disk: Path, part: dict, out: Path) -> Path:
    """One partition of `disk` as its own (sparse) file."""
    with open(out, "wb") as f:
        f.truncate(part["size"] * 512)
    with open(disk, "rb") as src, open(out, "r+b") as dst:
        src.seek(part["start"] * 512)
        remaining = part["size"] * 512
        while remaining:
            chunk = src.read(min(MIB, remaining))
            if chunk.strip(b"\0"):
                dst.seek(part["size"] * 512 - remaining)
                dst.write(chunk)
            remaining -= len(chunk)
    return out


def ext4_read(image: Path, path: str) -> str | None:
    """A file's text inside an ext4 image (debugfs, no mount); None when it is not there."""
    proc = subprocess.run([require_tool("debugfs"), "-R", f"cat {path}", str(image)], capture_output=True,
                          timeout=60)
    if b"File not found" in proc.stderr or proc.returncode != 0:
        return None
    return proc.stdout.decode(errors="replace")


def ext4_stat(image: Path, path: str) -> str | None:
    proc = subprocess.run([require_tool("debugfs"), "-R", f"stat {path}", str(image)], capture_output=True,
                          text=True, timeout=60)
    return None if "File not found" in proc.stderr else proc.stdout


def qcow2_to_raw(image: Path, out: Path) -> Path:
    subprocess.run([require_tool("qemu-img"), "convert", "-f", "qcow2", "-O", "raw", str(image), str(out)],
                   check=True, timeout=300)
    return out
