"""The node image's outputs, made from its raw disk: raw for dd, qcow2, and a vagrant-libvirt box.

- `pylabs-node.raw.zst`: the raw disk, zstd-compressed;
  `zstd -dc pylabs-node.raw.zst | dd of=/dev/sdX bs=4M conv=fsync` writes it to a disk.
- `pylabs-node.qcow2`: compressed qcow2 (`qemu-img convert -c`, zstd), for QEMU and libvirt.
- `pylabs-node.box`: a vagrant-libvirt box, a tar of `metadata.json`
  (`{"provider": "libvirt", "format": "qcow2", "virtual_size": GiB}`), a `Vagrantfile`
  with the box's defaults and `box.img` (qcow2 of the disk with the `vagrant` user).
"""

import io
import json
import tarfile
import time
from pathlib import Path

from appliance.image.disk import run

FORMATS = ("raw", "qcow2", "box")
NAMES = {"raw": "pylabs-node.raw.zst", "qcow2": "pylabs-node.qcow2", "box": "pylabs-node.box"}


def parse_formats(text: str) -> tuple[str, ...]:
    """"raw,qcow2" -> ("raw", "qcow2"), in the canonical order; ValueError naming an unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in names)


def raw_zst(raw: Path, out: Path) -> None:
    run(["zstd", "-q", "-f", "-T0", "-6", "-o", str(out), str(raw)])


def qcow2(raw: Path, out: Path) -> None:
    """Compressed qcow2, zstd clusters (QEMU 5.1 and later read them): five times faster to
    make than zlib here, for the same size."""
    run(["qemu-img", "convert", "-q", "-c", "-m", "8", "-W", "-f", "raw", "-O", "qcow2",
         "-o", "compression_type=zstd", str(raw), str(out)])


def box(image: Path, out: Path, size_gib: int, vagrantfile: str) -> None:
    """The vagrant-libvirt box (format v1): metadata.json, Vagrantfile, box.img."""
    metadata = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": size_gib}, indent=2)
    now = int(time.time())
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("metadata.json", metadata + "\n"), ("Vagrantfile", vagrantfile)):
            _add_bytes(tar, name, data.encode(), now)
        info = tar.gettarinfo(str(image), arcname="box.img")
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o644
        with open(image, "rb") as f:
            tar.addfile(info, f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))
