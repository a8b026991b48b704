"""The node image's disk: one MBR disk that boots on BIOS and on UEFI, built from plain files.

No loop device and no mount: the root file system is made by `mkfs.ext4 -d DIR`, the EFI
system partition by `mkfs.vfat -C` + `mcopy`, the partition table by `sfdisk` on the
image file, and the partitions are copied in at their offsets (sparse).

    sector 0        MBR: GRUB's boot.img code (440 bytes) + the partition table
    sectors 1-2047  GRUB's core.img for BIOS (it finds the root file system by UUID)
    partition 1     EFI system partition (type ef): EFI/BOOT/BOOTX64.EFI, a standalone GRUB
    partition 2     root file system (ext4, active): /boot/grub/grub.cfg read by both GRUBs
"""

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
MIB = 1 << 20
GAP = MIB  # the first partition starts at 1 MiB; core.img lives in the gap before it
# GRUB's boot.img (include/grub/i386/pc/boot.h): where grub-setup patches it.
KERNEL_SECTOR = 0x5C  # 8 bytes: the sector of core.img (1 by default, where we put it)
DRIVE_CHECK = 0x66  # a 2-byte jmp that grub-setup turns into NOPs for hard disks
MBR_CODE = 440  # boot code; then the disk signature and the partition table
BIOS_MODULES = ("biosdisk", "part_msdos", "ext2", "search", "search_fs_uuid", "configfile", "normal",
                "linux", "echo", "test", "serial", "terminal", "gzio", "sleep")
EFI_MODULES = ("part_msdos", "ext2", "search", "search_fs_uuid", "configfile")


class DiskError(Exception):
    """A disk-building tool failed; the message names it and carries its error."""


@dataclass(frozen=True)
class Layout:
    """Byte offsets and sizes of the two partitions in a disk of `size` bytes."""

    size: int
    esp_start: int
    esp_size: int
    root_start: int
    root_size: int

    @classmethod
    def plan(cls, size_gib: int, esp_mib: int) -> "Layout":
        size, esp = size_gib << 30, esp_mib * MIB
        return cls(size, GAP, esp, GAP + esp, size - GAP - esp)

    def sfdisk_script(self) -> str:
        """The partition table as sfdisk input (sectors); a fixed disk identifier."""
        s = SECTOR
        return ("label: dos\nlabel-id: 0x50594c42\nunit: sectors\n\n"
                f"start={self.esp_start // s}, size={self.esp_size // s}, type=ef\n"
                f"start={self.root_start // s}, size={self.root_size // s}, type=83, bootable\n")


def run(cmd: list[str], timeout: float = 900, **kwargs) -> str:
    """Run a tool; DiskError with its last lines of output when it fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskError(f"{cmd[0]}: {exc}") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:])
        raise DiskError(f"{' '.join(cmd[:3])} … failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def root_filesystem(rootdir: Path, out: Path, size: int, uuid: str, label: str = "appliance-root") -> None:
    """An ext4 image of `size` bytes holding `rootdir` (owners, modes and xattrs kept).
    metadata_csum_seed and orphan_file are off: GRUB 2.06 cannot read such file systems."""
    out.unlink(missing_ok=True)
    run(["mkfs.ext4", "-q", "-F", "-t", "ext4", "-O", "^metadata_csum_seed,^orphan_file",
         "-L", label, "-U", uuid, "-E", f"hash_seed={uuid},root_owner=0:0",
         "-d", str(rootdir), str(out), f"{size // 1024}k"])


def grub_cfg(uuid: str, cmdline: str, title: str = "PyLabs appliance") -> str:
    """/boot/grub/grub.cfg on the root file system: read by the BIOS and the UEFI GRUB.
    /boot/vmlinuz and /boot/initrd.img are the kernel package's own symlinks
    (kernel-img.conf link_in_boot), so a kernel upgrade inside the node keeps booting."""
    return f"""# Written by `appliance image build node`.
set timeout=1
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry "{title}" {{
    search --no-floppy --fs-uuid --set=root {uuid}
    echo "Loading the kernel…"
    linux /boot/vmlinuz root=UUID={uuid} {cmdline}
    initrd /boot/initrd.img
}}
"""


def bios_core(uuid: str, out: Path) -> bytes:
    """GRUB's core.img for BIOS with every module grub.cfg needs built in (the root file
    system has no i386-pc modules to load); it finds the root file system by UUID."""
    with tempfile.TemporaryDirectory() as tmp:
        early = Path(tmp) / "early.cfg"
        early.write_text(f"search --no-floppy --fs-uuid --set=root {uuid}\nset prefix=($root)/boot/grub\n")
        run(["grub-mkimage", "-O", "i386-pc", "-o", str(out), "-c", str(early), "-p", "/boot/grub",
             *BIOS_MODULES])
    core = out.read_bytes()
    if len(core) > GAP - SECTOR:
        raise DiskError(f"GRUB core.img is {len(core)} bytes: it does not fit before the first partition")
    return core


def efi_loader(uuid: str, out: Path) -> None:
    """A standalone GRUB for UEFI (every module in its memdisk) that reads the root file
    system's grub.cfg."""
    with tempfile.TemporaryDirectory() as tmp:
        early = Path(tmp) / "grub.cfg"
        early.write_text(f"search --no-floppy --fs-uuid --set=root {uuid}\n"
                         "configfile ($root)/boot/grub/grub.cfg\n")
        run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(out), "--modules", " ".join(EFI_MODULES),
             "--locales=", "--fonts=", "--themes=", f"boot/grub/grub.cfg={early}"])


def esp(efi_binary: Path, out: Path, size: int) -> None:
    """A FAT32 EFI system partition image holding EFI/BOOT/BOOTX64.EFI (the removable-media
    path every UEFI firmware boots without NVRAM entries)."""
    out.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-F", "32", "-s", "1", "-n", "ESP", "-i", "50594c42", str(out),
         str(size // 1024)])
    run(["mmd", "-i", str(out), "::/EFI", "::/EFI/BOOT"])
    run(["mcopy", "-i", str(out), str(efi_binary), "::/EFI/BOOT/BOOTX64.EFI"])


def assemble(out: Path, layout: Layout, esp_image: Path, root_image: Path, core: bytes,
             boot_img: bytes) -> None:
    """The raw disk: partition table, both partitions, core.img in the gap, boot.img in the MBR."""
    out.unlink(missing_ok=True)
    with open(out, "wb") as f:
        f.truncate(layout.size)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(out)], input=layout.sfdisk_script())
    for image, start, size in ((esp_image, layout.esp_start, layout.esp_size),
                               (root_image, layout.root_start, layout.root_size)):
        if image.stat().st_size > size:
            raise DiskError(f"{image.name} is larger than its partition ({size} bytes)")
        copy_sparse(image, out, start)
    with open(out, "r+b") as f:
        mbr = bytearray(f.read(SECTOR))
        f.seek(0)
        f.write(patch_boot_img(boot_img)[:MBR_CODE] + mbr[MBR_CODE:])
        f.seek(SECTOR)
        f.write(core)


def patch_boot_img(boot_img: bytes) -> bytes:
    """boot.img as grub-setup would write it for a hard disk with core.img at sector 1:
    the drive-number check enabled (NOPs over its jmp), for BIOSes that pass a wrong drive."""
    img = bytearray(boot_img)
    if len(img) != SECTOR or img[DRIVE_CHECK] != 0xEB:
        raise DiskError("GRUB's boot.img is not the expected 512-byte image (jmp at 0x66)")
    if int.from_bytes(img[KERNEL_SECTOR:KERNEL_SECTOR + 8], "little") != 1:
        raise DiskError("GRUB's boot.img does not load core.img from sector 1")
    img[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"
    return bytes(img)


def copy_sparse(source: Path, target: Path, offset: int, block: int = MIB) -> None:
    """Copy `source` into `target` at `offset`, skipping all-zero blocks (the target is
    sparse and already zero there)."""
    zero = bytes(block)
    with open(source, "rb") as src, open(target, "r+b") as dst:
        position = offset
        while chunk := src.read(block):
            if chunk != zero[:len(chunk)]:
                dst.seek(position)
                dst.write(chunk)
            position += len(chunk)
