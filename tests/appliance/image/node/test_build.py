"""The built node image, read back as a user would check it: formats, partitions, boot loaders, contents.

Slow: the session's `node_image` fixture builds it (cached between sessions).
"""

import json
import subprocess
import tarfile

import pytest

from appliance import cli
from appliance.image import disk, enroll, node, node_recipe, recipe
from tests.appliance.image.conftest import PACKAGES
from tests.appliance.image.node.conftest import NODE_OUT, STATE, build
from tests.appliance.image.node.diskread import ext4_read, ext4_stat, extract, partitions, qcow2_to_raw
from tests.fixtures.tools import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # the first one may build the image
FILES = ("pylabs-node.raw.zst", "pylabs-node.qcow2", "pylabs-node.box")


def _qemu_info(path) -> dict:
    return json.loads(subprocess.run([require_tool("qemu-img"), "info", "--output=json", str(path)],
                                     capture_output=True, text=True, check=True, timeout=60).stdout)


def test_build_json_describes_the_three_outputs(node_image):
    info = json.loads((node_image.output / "build.json").read_text())
    assert sorted(info["files"]) == sorted(FILES)
    for name, f in info["files"].items():
        assert (node_image.output / name).stat().st_size == f["size"]
        assert 50 << 20 < f["size"] < 700 << 20, (name, f["size"])  # compressed: far below the 2 GiB disk
    assert info["disk_bytes"] == node_recipe.load().size_gib << 30
    assert info["recipe_hash"] == node_recipe.load().hash()
    assert info["kernel_version"].endswith("-amd64") and info["python"] == "python3.11"


def test_qcow2_is_compressed_and_holds_the_same_disk_as_the_raw(node_image, node_raw):
    qcow2 = node_image.output / "pylabs-node.qcow2"
    info = _qemu_info(qcow2)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 2 << 30)
    assert info["format-specific"]["data"]["compression-type"] == "zstd"
    assert node_raw.stat().st_size == 2 << 30
    same = subprocess.run([require_tool("qemu-img"), "compare", "-q", "-f", "raw", "-F", "qcow2",
                           str(node_raw), str(qcow2)], capture_output=True, text=True, timeout=300)
    assert same.returncode == 0, same.stdout + same.stderr


def test_raw_disk_boots_both_ways_from_one_mbr(node_raw, tmp_path):
    esp, root = partitions(node_raw)
    assert (esp["type"], root["type"], root.get("bootable")) == ("ef", "83", True)
    with open(node_raw, "rb") as f:
        mbr = f.read(512)
    boot = disk.patch_boot_img(open("/usr/lib/grub/i386-pc/boot.img", "rb").read())
    assert mbr[:disk.MBR_CODE] == boot[:disk.MBR_CODE] and mbr[510:] == b"\x55\xaa"
    listing = subprocess.run([require_tool("mdir"), "-b", "-i", f"{node_raw}@@{esp['start'] * 512}",
                              "::/EFI/BOOT"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert "BOOTX64.EFI" in listing
    rootfs = extract(node_raw, root, tmp_path / "root.ext4")
    uuid = json.loads((NODE_OUT / "build.json").read_text())["root_uuid"]
    grub = ext4_read(rootfs, "/boot/grub/grub.cfg")
    assert f"root=UUID={uuid}" in grub and "console=ttyS0" in grub
    assert f"UUID={uuid}" in ext4_read(rootfs, "/etc/fstab")
    for link in ("/boot/vmlinuz", "/boot/initrd.img"):
        assert "Type: symlink" in ext4_stat(rootfs, link)


@pytest.fixture(scope="module")
def root_of(node_image, node_raw, tmp_path_factory):
    """The root file system of the raw image and of the box's image, as ext4 files."""
    work = tmp_path_factory.mktemp("roots")
    with tarfile.open(node_image.output / "pylabs-node.box") as box:
        box.extract("box.img", work, filter="data")
    box_raw = qcow2_to_raw(work / "box.img", work / "box.raw")
    return {"raw": extract(node_raw, partitions(node_raw)[1], work / "raw-root.ext4"),
            "box": extract(box_raw, partitions(box_raw)[1], work / "box-root.ext4")}


def test_root_has_the_appliance_its_units_and_what_it_serves(root_of):
    root = root_of["raw"]
    assert ext4_stat(root, "/opt/appliance/bin/appliance") is not None
    assert "appliance.cli" in ext4_read(root, "/opt/appliance/bin/appliance")
    wants = "/etc/systemd/system/multi-user.target.wants"
    for unit in ("appliance.service", "appliance-firstboot.service", "ssh.service", "systemd-networkd.service"):
        assert "Type: symlink" in ext4_stat(root, f"{wants}/{unit}"), unit
    for unit in ("nginx.service", "ejabberd.service", "postgresql.service"):
        assert ext4_stat(root, f"{wants}/{unit}") is None, unit  # only when the config asks
    assert "Name=en* eth*" in ext4_read(root, "/etc/systemd/network/80-appliance.network")
    for served in ("/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi", "/usr/lib/PXELINUX/pxelinux.0",
                   "/usr/share/appliance/enroll/vmlinuz", "/usr/share/appliance/enroll/initrd.img"):
        assert ext4_stat(root, served) is not None, served
    enroll_info = json.loads(ext4_read(root, "/usr/share/appliance/enroll/build.json"))
    assert enroll_info["recipe_hash"] == recipe.load().hash()


def test_each_node_makes_its_own_identity_at_first_boot(root_of):
    root = root_of["raw"]
    assert ext4_read(root, "/etc/machine-id") == ""
    assert ext4_stat(root, "/etc/ssh/ssh_host_ed25519_key") is None
    assert ext4_stat(root, "/etc/appliance/appliance.toml") is None  # written at first boot


def test_only_the_box_has_the_vagrant_user(root_of, node_image):
    key = (node_recipe.load().directory / "vagrant.pub").read_text().strip()
    assert "vagrant:" not in ext4_read(root_of["raw"], "/etc/passwd")
    assert ext4_stat(root_of["raw"], "/etc/sudoers.d/vagrant") is None
    box = root_of["box"]
    assert "vagrant:" in ext4_read(box, "/etc/passwd")
    assert ext4_read(box, "/home/vagrant/.ssh/authorized_keys").strip() == key
    assert ext4_read(box, "/etc/sudoers.d/vagrant").strip() == "vagrant ALL=(ALL) NOPASSWD: ALL"
    assert "Mode:  0600" in ext4_stat(box, "/home/vagrant/.ssh/authorized_keys")


def test_box_is_a_vagrant_libvirt_box(node_image, tmp_path):
    with tarfile.open(node_image.output / "pylabs-node.box") as box:
        assert sorted(box.getnames()) == ["Vagrantfile", "box.img", "metadata.json"]
        metadata = json.load(box.extractfile("metadata.json"))
        vagrantfile = box.extractfile("Vagrantfile").read().decode()
        box.extract("box.img", tmp_path, filter="data")
    assert metadata == {"provider": "libvirt", "format": "qcow2", "virtual_size": 2}
    assert 'synced_folder ".", "/vagrant", disabled: true' in vagrantfile
    assert _qemu_info(tmp_path / "box.img")["virtual-size"] == 2 << 30


def test_a_second_build_is_up_to_date_and_touches_nothing(node_image, checkout):
    stamps = {name: (NODE_OUT / name).stat().st_mtime_ns for name in (*FILES, "build.json")}
    lines: list[str] = []
    result = build(checkout, lines.append)
    assert not result.built, lines
    assert any("up to date" in line for line in lines) and any("[1/6]" in line for line in lines)
    assert {name: (NODE_OUT / name).stat().st_mtime_ns for name in stamps} == stamps


def test_command_says_up_to_date(node_image, checkout, tmp_path, monkeypatch, capsys):
    """The command, as a user runs it from the checkout (here the session's copy of it)."""
    monkeypatch.setattr(enroll, "default_cache", lambda state_dir: PACKAGES)
    monkeypatch.setattr(node, "SOURCE", checkout)
    monkeypatch.setattr(recipe, "RECIPES", checkout / "image")
    config = tmp_path / "appliance.toml"
    config.write_text(f'[node]\nstate_dir = "{STATE}"\n')
    assert cli.main(["image", "build", "node", "-c", str(config), "--output", str(NODE_OUT)]) == 0
    assert "node image: up to date in" in capsys.readouterr().out


def test_a_missing_tool_is_named_with_its_package_before_anything_is_done(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # none of the tools; /usr/sbin and /sbin are still searched
    config = tmp_path / "appliance.toml"
    config.write_text(f'[node]\nstate_dir = "{tmp_path}/state"\n')
    assert cli.main(["image", "build", "node", "-c", str(config), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "missing tools: mmdebstrap (Debian package mmdebstrap)" in err
    assert "qemu-img (Debian package qemu-utils)" in err and "apt-get install" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()


def test_an_unknown_format_is_refused(tmp_path, capsys):
    assert cli.main(["image", "build", "node", "--formats", "raw,iso", "--output", str(tmp_path)]) == 1
    assert "unknown format iso" in capsys.readouterr().err
