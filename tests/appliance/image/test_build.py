"""Building the enrollment image: the recipe hash, the cache, what the initramfs holds, the command."""

import gzip
import json
import shutil
import subprocess

import pytest

from appliance import cli
from appliance.image import enroll, recipe
from tests.appliance.image.conftest import PACKAGES
from tests.fixtures.tools import require_tool


@pytest.fixture
def recipe_copy(tmp_path):
    """A copy of image/enroll/ that a test may edit."""
    return shutil.copytree(recipe.RECIPES / "enroll", tmp_path / "recipe")


EDITS = {
    "the init script": ("init", lambda text: text + "\n# edited\n"),
    "the module list": ("recipe.toml", lambda text: text.replace('"e1000",', '"e1000", "r8169",')),
    "a helper script": ("facts.sh", lambda text: text.replace("head -n 1", "head -n 2")),
}


@pytest.mark.parametrize("name, edit", EDITS.values(), ids=EDITS.keys())
def test_recipe_hash_changes_when_the_recipe_changes(recipe_copy, name, edit):
    before = recipe.load(recipe_copy).hash()
    (recipe_copy / name).write_text(edit((recipe_copy / name).read_text()))
    assert recipe.load(recipe_copy).hash() != before


def test_recipe_hash_ignores_files_the_recipe_does_not_use(recipe_copy):
    before = recipe.load(recipe_copy).hash()
    (recipe_copy / "NOTES").write_text("not part of the image\n")
    assert recipe.load(recipe_copy).hash() == before


def test_a_recipe_naming_a_missing_file_is_refused(recipe_copy):
    (recipe_copy / "facts.sh").unlink()
    with pytest.raises(recipe.RecipeError, match="facts.sh"):
        recipe.load(recipe_copy)


def test_build_json_describes_the_image(enroll_image):
    info = json.loads((enroll_image.output / "build.json").read_text())
    assert info["recipe_hash"] == recipe.load().hash()
    assert info["kernel_version"] == enroll.debian.resolve(recipe.load().kernel_package).removeprefix("linux-image-")
    for name in ("vmlinuz", "initrd.img"):
        assert (enroll_image.output / name).stat().st_size == info["files"][name]["size"]
    assert 1 << 20 < info["files"]["initrd.img"]["size"] < 16 << 20  # a few MB
    assert info["modules_missing"] == []
    order = info["modules"]
    for module, after in [("virtio_net", "net_failover"), ("net_failover", "failover"),
                          ("virtio_pci", "virtio_pci_modern_dev"), ("virtio_pci", "virtio_pci_legacy_dev"),
                          ("sd_mod", "scsi_mod"), ("ahci", "libahci"), ("nvme", "nvme_core")]:
        assert order.index(after) < order.index(module), (module, after)


def test_initrd_is_a_cpio_with_init_busybox_and_the_modules(enroll_image):
    busybox = require_tool("busybox")
    data = gzip.decompress((enroll_image.output / "initrd.img").read_bytes())
    listing = subprocess.run([busybox, "cpio", "-t", "-v"], input=data, capture_output=True,
                             timeout=30, check=True).stdout.decode()
    entries = {line.split()[-1] if "->" not in line else line.split()[-3]: line
               for line in listing.splitlines()}
    version = json.loads((enroll_image.output / "build.json").read_text())["kernel_version"]
    for name in ("init", "bin/busybox", "usr/share/udhcpc/default.script", "lib/enroll/facts.sh",
                 f"lib/modules/{version}/modules.dep", "lib/enroll/modules"):
        assert name in entries, name
    assert entries["init"].startswith("-rwxr-xr-x") and entries["dev/console"].startswith("c")
    modules = [n for n in entries if n.endswith(".ko")]
    assert len(modules) == len(json.loads((enroll_image.output / "build.json").read_text())["modules"])


def test_a_second_build_of_the_same_recipe_does_nothing(enroll_image, tmp_path):
    output = shutil.copytree(enroll_image.output, tmp_path / "enroll")
    stamps = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    result = enroll.build(recipe.load(), output, PACKAGES)
    assert not result.built
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == stamps


def test_a_damaged_or_outdated_build_is_rebuilt(enroll_image, recipe_copy, tmp_path):
    output = shutil.copytree(enroll_image.output, tmp_path / "enroll")
    (output / "initrd.img").write_bytes(b"half")
    assert enroll.build(recipe.load(), output, PACKAGES).built
    assert (output / "initrd.img").read_bytes() == (enroll_image.output / "initrd.img").read_bytes()
    (recipe_copy / "init").write_text((recipe_copy / "init").read_text() + "\n# edited\n")
    result = enroll.build(recipe.load(recipe_copy), output, PACKAGES)
    assert result.built and result.info["recipe_hash"] == recipe.load(recipe_copy).hash()


def test_command_builds_into_http_root_then_says_it_is_up_to_date(enroll_image, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(enroll, "default_cache", lambda state_dir: PACKAGES)  # no second download
    config = tmp_path / "appliance.toml"
    config.write_text(f'[node]\nstate_dir = "{tmp_path}/state"\n[http]\nroot = "{tmp_path}/http"\n')
    assert cli.main(["image", "build", "enroll", "-c", str(config)]) == 0
    assert "enroll image built in" in capsys.readouterr().out
    built = tmp_path / "http" / "enroll"
    assert sorted(p.name for p in built.iterdir()) == ["build.json", "initrd.img", "vmlinuz"]
    assert (built / "initrd.img").read_bytes() == (enroll_image.output / "initrd.img").read_bytes()
    assert cli.main(["image", "build", "enroll", "-c", str(config)]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert cli.main(["image", "build", "enroll", "-c", str(config), "--output", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "vmlinuz").exists()


def test_a_kernel_debian_does_not_have_fails_naming_the_package_and_the_fix(recipe_copy, tmp_path):
    text = (recipe_copy / "recipe.toml").read_text()
    pinned = recipe.load(recipe_copy).kernel_package
    (recipe_copy / "recipe.toml").write_text(text.replace(pinned, "linux-image-0.0.0-0-amd64"))
    with pytest.raises(enroll.debian.PackageError, match="linux-image-0.0.0-0-amd64.*apt-cache depends"):
        enroll.build(recipe.load(recipe_copy), tmp_path / "out", tmp_path / "cache")
    assert not (tmp_path / "out").exists()


def test_the_kernel_metapackage_resolves_to_the_current_abi():
    """A point release that drops an ABI from the mirror must not break the build."""
    import re

    resolved = enroll.debian.resolve("linux-image-amd64")
    assert re.fullmatch(r"linux-image-\d+\.\d+\.\d+-\d+-amd64", resolved), resolved
    assert enroll.debian.resolve("linux-image-6.1.0-1-amd64") == "linux-image-6.1.0-1-amd64"
