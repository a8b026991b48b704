"""The disk builder, with the real tools on small files: partition table, ESP, ext4, GRUB's pieces.

A whole (1 GiB, sparse) disk is assembled from a tiny root tree and read back with
sfdisk, blkid, mtools and debugfs, as a user checking an image would.
"""

import subprocess

import pytest

from appliance.image import disk
from appliance.image.disk import MIB, Layout
from tests.appliance.image.node.diskread import ext4_read, partitions
from tests.fixtures.tools import require_tool

UUID = "0b0e5e1d-1111-4222-8333-444455556666"
BOOT_IMG = disk.Path("/usr/lib/grub/i386-pc/boot.img")


def test_layout_leaves_a_gap_for_grub_and_fills_the_disk():
    layout = Layout.plan(2, 64)
    assert layout.esp_start == MIB and layout.esp_size == 64 * MIB
    assert layout.root_start == layout.esp_start + layout.esp_size
    assert layout.root_start + layout.root_size == layout.size == 2 << 30
    assert "type=ef" in layout.sfdisk_script() and "type=83, bootable" in layout.sfdisk_script()


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """A 1 GiB disk: ESP with a stand-in loader, ext4 root with a few files, GRUB's pieces."""
    for tool in ("sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "grub-mkimage", "debugfs", "blkid"):
        require_tool(tool)
    work = tmp_path_factory.mktemp("disk")
    root = work / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("appliance\n")
    (root / "etc/secret").write_text("only root\n")
    (root / "etc/secret").chmod(0o600)
    (root / "empty").write_bytes(bytes(3 * MIB))  # all zeros: stays a hole in the image
    loader = work / "BOOTX64.EFI"
    loader.write_bytes(b"MZ stand-in EFI loader")
    layout = Layout.plan(1, 64)
    disk.esp(loader, work / "esp.img", layout.esp_size)
    disk.root_filesystem(root, work / "root.ext4", layout.root_size, UUID)
    core = disk.bios_core(UUID, work / "core.img")
    disk.assemble(work / "disk.raw", layout, work / "esp.img", work / "root.ext4", core, BOOT_IMG.read_bytes())
    return work, layout, core


def test_partition_table_has_the_esp_and_an_active_root(small_disk):
    work, layout, _ = small_disk
    esp, root = partitions(work / "disk.raw")
    assert (esp["type"], esp["start"] * 512, esp["size"] * 512) == ("ef", layout.esp_start, layout.esp_size)
    assert (root["type"], root["start"] * 512, root.get("bootable")) == ("83", layout.root_start, True)
    assert (work / "disk.raw").stat().st_size == 1 << 30


def test_esp_holds_the_removable_media_loader(small_disk):
    work, layout, _ = small_disk
    image = f"{work / 'disk.raw'}@@{layout.esp_start}"
    listing = subprocess.run([require_tool("mdir"), "-b", "-i", image, "::/EFI/BOOT"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
    assert "BOOTX64.EFI" in listing
    data = subprocess.run([require_tool("mtype"), "-i", image, "::/EFI/BOOT/BOOTX64.EFI"], capture_output=True,
                          check=True, timeout=30).stdout
    assert data == b"MZ stand-in EFI loader"


def test_root_is_ext4_with_our_uuid_files_and_modes(small_disk):
    work, layout, _ = small_disk
    probe = subprocess.run([require_tool("blkid"), "-p", "-O", str(layout.root_start), "-o", "export",
                            str(work / "disk.raw")], capture_output=True, text=True, check=True, timeout=30).stdout
    assert "TYPE=ext4" in probe and f"UUID={UUID}" in probe
    assert ext4_read(work / "root.ext4", "/etc/hostname") == "appliance\n"
    stat = subprocess.run([require_tool("debugfs"), "-R", "stat /etc/secret", str(work / "root.ext4")],
                          capture_output=True, text=True, timeout=30).stdout
    assert "Mode:  0600" in stat and "User:     0" in stat
    features = subprocess.run([require_tool("dumpe2fs"), "-h", str(work / "root.ext4")], capture_output=True,
                              text=True, timeout=30).stdout
    assert "metadata_csum_seed" not in features and "orphan_file" not in features  # GRUB 2.06 reads it


def test_mbr_has_grub_boot_code_and_core_img_follows(small_disk):
    work, _, core = small_disk
    with open(work / "disk.raw", "rb") as f:
        head = f.read(disk.SECTOR + len(core))
    boot = BOOT_IMG.read_bytes()
    assert head[:disk.DRIVE_CHECK] == boot[:disk.DRIVE_CHECK]
    assert head[disk.DRIVE_CHECK:disk.DRIVE_CHECK + 2] == b"\x90\x90"  # as grub-setup does for disks
    assert head[510:512] == b"\x55\xaa"  # sfdisk's table is kept
    assert head[disk.SECTOR:] == core
    assert len(core) < MIB - disk.SECTOR


def test_partitions_are_copied_sparse(small_disk):
    work, _, _ = small_disk
    allocated = (work / "disk.raw").stat().st_blocks * 512
    assert allocated < (work / "root.ext4").stat().st_blocks * 512 + 40 * MIB  # holes stay holes


def test_a_boot_img_of_another_layout_is_refused():
    with pytest.raises(disk.DiskError, match="boot.img"):
        disk.patch_boot_img(bytes(512))


def test_a_root_tree_larger_than_its_partition_fails_naming_the_tool(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root/big").write_bytes(b"x" * (4 * MIB))
    with pytest.raises(disk.DiskError, match="mkfs.ext4"):
        disk.root_filesystem(tmp_path / "root", tmp_path / "root.ext4", 2 * MIB, UUID)


def test_grub_cfg_boots_the_kernel_symlinks_by_uuid():
    cfg = disk.grub_cfg(UUID, "ro console=ttyS0")
    assert f"search --no-floppy --fs-uuid --set=root {UUID}" in cfg
    assert f"linux /boot/vmlinuz root=UUID={UUID} ro console=ttyS0" in cfg
    assert "initrd /boot/initrd.img" in cfg
