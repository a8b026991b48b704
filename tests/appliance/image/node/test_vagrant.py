"""The Vagrant lab: the repo's Vagrantfile passes `vagrant validate` with vagrant-libvirt (no
libvirtd needed), a broken one does not, and Vagrant accepts the built box.
"""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from appliance.image.node import SOURCE
from tests.fixtures.tools import require_tool


def _vagrant(args: list[str], cwd, home, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "VAGRANT_HOME": str(home), "VAGRANT_DEFAULT_PROVIDER": "libvirt",
               "VAGRANT_CHECKPOINT_DISABLE": "1", **env}
    return subprocess.run([require_tool("vagrant"), *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=300)


CASES = {
    "defaults (2 BIOS clients)": {},
    "3 UEFI clients": {"PYLABS_CLIENTS": "3", "PYLABS_FIRMWARE": "uefi"},
}


@pytest.mark.parametrize("env", CASES.values(), ids=CASES.keys())
def test_vagrantfile_validates_with_the_libvirt_provider(env, tmp_path):
    result = _vagrant(["validate"], SOURCE, tmp_path / "home", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout


def test_vagrantfile_defines_the_appliance_and_boxless_pxe_clients():
    text = (SOURCE / "Vagrantfile").read_text()
    for needed in ('libvirt__dhcp_enabled: false', 'libvirt.boot "network"', 'nic_model_type = "e1000"',
                   "libvirt.mgmt_attach = false", "libvirt.loader = OVMF_CODE", '"serial" => format("VAGRANT-%04d"',
                   'appliance.vm.box = BOX', "python -m appliance.image.seed", "python -m appliance.image.firstboot"):
        assert needed in text, needed


BROKEN = {
    "a sysinfo block libvirt does not know": ('"base board" =>', '"mother board" =>', "invalid sysinfo element"),
    "a firmware the lab does not know": ('FIRMWARE = ENV.fetch("PYLABS_FIRMWARE", "bios")',
                                         'FIRMWARE = ENV.fetch("PYLABS_FIRMWARE", "coreboot")', "bios or uefi"),
}


@pytest.mark.parametrize("old, new, message", BROKEN.values(), ids=BROKEN.keys())
def test_validate_catches_a_broken_vagrantfile(old, new, message, tmp_path):
    text = (SOURCE / "Vagrantfile").read_text()
    assert old in text
    (tmp_path / "Vagrantfile").write_text(text.replace(old, new))
    result = _vagrant(["validate"], tmp_path, tmp_path / "home")
    assert result.returncode != 0 and message in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_vagrant_adds_the_built_box(node_image, tmp_path):
    home = tmp_path / "home"
    box = node_image.output / "pylabs-node.box"
    added = _vagrant(["box", "add", "--name", "pylabs/appliance", str(box)], tmp_path, home)
    assert added.returncode == 0, added.stdout + added.stderr
    listed = _vagrant(["box", "list"], tmp_path, home)
    assert "pylabs/appliance" in listed.stdout and "(libvirt" in listed.stdout
    (unpacked,) = (home / "boxes").glob("pylabs-VAGRANTSLASH-appliance/*/libvirt")
    assert json.loads((unpacked / "metadata.json").read_text())["format"] == "qcow2"
    with tarfile.open(box) as tar:
        assert (unpacked / "box.img").stat().st_size == tar.getmember("box.img").size


def test_the_box_has_vagrants_own_insecure_key():
    """`vagrant up` logs in with the key Vagrant ships (then replaces it): the box must carry that one."""
    require_tool("vagrant")
    shipped = sorted(Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-[0-9]*/keys/vagrant.pub"))
    assert shipped, "Vagrant's insecure key is not installed (Debian package vagrant)"
    ours = (SOURCE / "image/node/vagrant.pub").read_text().split()[:2]
    assert shipped[-1].read_text().split()[:2] == ours
