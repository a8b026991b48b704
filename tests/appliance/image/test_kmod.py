"""Kernel modules without kmod: reading .modinfo, writing and reading modules.dep, insmod order."""

import struct

import pytest

from appliance.image import kmod

# A small modules.dep in depmod's format: every dependency listed, the last loaded first.
MODULES_DEP = """\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko
kernel/drivers/nvme/host/nvme-core.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
"""

CASES = {
    "no dependencies": (["e1000"], ["e1000"], [], []),
    "a chain, deepest first": (["virtio_net"], ["virtio_ring", "virtio", "failover", "net_failover", "virtio_net"], [], []),
    "shared dependencies loaded once": (
        ["virtio_pci", "virtio_net"],
        ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
         "failover", "net_failover", "virtio_net"], [], []),
    "hyphen and underscore are one name": (["nvme"], ["nvme_core", "nvme"], [], []),
    "built in: nothing to load": (["af_packet", "e1000"], ["e1000"], ["af_packet"], []),
    "missing: reported, the rest kept": (["ice", "e1000", "nosuch"], ["e1000"], [], ["ice", "nosuch"]),
}


@pytest.mark.parametrize("wanted, order, builtin, missing", CASES.values(), ids=CASES.keys())
def test_resolve_orders_modules_after_their_dependencies(wanted, order, builtin, missing):
    result = kmod.resolve(wanted, kmod.parse_modules_dep(MODULES_DEP), builtin={"af_packet"})
    assert [kmod.module_name(p) for p in result.order] == order
    assert (result.builtin, result.missing) == (builtin, missing)


def _module(name: str, depends: str) -> bytes:
    """A minimal ELF64 relocatable with a .modinfo section, as the kernel's modules have."""
    modinfo = f"license=GPL\0depends={depends}\0name={name}\0".encode()
    names = b"\0.shstrtab\0.modinfo\0"
    data_offset = 64
    shoff = data_offset + len(names) + len(modinfo)
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 1)

    def section(name_offset, offset, size):
        return struct.pack("<IIQQQQIIQQ", name_offset, 3 if name_offset == 1 else 1, 0, 0, offset, size, 0, 0, 1, 0)

    return (header + names + modinfo + bytes(64) + section(1, data_offset, len(names))
            + section(11, data_offset + len(names), len(modinfo)))


def test_modules_dep_is_written_from_each_modules_own_depends(tmp_path):
    modules = {"kernel/a/virtio_ring.ko": "", "kernel/a/virtio.ko": "virtio_ring",
               "kernel/b/virtio_net.ko": "virtio_ring,virtio,net_failover",
               "kernel/c/net_failover.ko": "failover", "kernel/c/failover.ko": "",
               "kernel/d/nvme-core.ko": "", "kernel/d/nvme.ko": "nvme-core"}
    for path, depends in modules.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(_module(kmod.module_name(path), depends))
    assert kmod.modinfo((tmp_path / "kernel/d/nvme.ko").read_bytes())["depends"] == ["nvme-core"]
    deps = kmod.parse_modules_dep(kmod.write_modules_dep(tmp_path).read_text())
    assert deps["kernel/d/nvme.ko"] == ["kernel/d/nvme-core.ko"]
    assert deps["kernel/a/virtio_ring.ko"] == []
    order = kmod.resolve(["virtio_net"], deps).order
    assert [kmod.module_name(p) for p in order] == ["virtio_ring", "virtio", "failover", "net_failover",
                                                    "virtio_net"]


def test_modinfo_refuses_what_is_not_a_module():
    with pytest.raises(ValueError):
        kmod.modinfo(b"#!/bin/sh\n")
