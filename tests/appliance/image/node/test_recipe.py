"""The node recipe: what it holds, which edits change which hash, and refusing a broken one."""

import shutil

import pytest

from appliance.image import node_recipe
from appliance.image.recipe import RECIPES, RecipeError


@pytest.fixture
def recipe_copy(tmp_path):
    """A copy of image/node/ that a test may edit."""
    return shutil.copytree(RECIPES / "node", tmp_path / "node")


def test_the_recipe_boots_serves_and_logs_in():
    recipe = node_recipe.load()
    for package in ("linux-image-amd64", "systemd-sysv", "python3-venv", "openssh-server", "sudo",
                    "ipxe", "pxelinux", "syslinux-common", "nginx-light", "ejabberd", "postgresql"):
        assert package in recipe.packages, package
    assert "appliance.service" in recipe.enable and "appliance-firstboot.service" in recipe.enable
    assert "nginx.service" in recipe.disable  # nginx runs under the appliance's http component
    assert all(target.startswith("/") for target in recipe.files.values())
    assert (recipe.directory / recipe.vagrant_key).read_text().startswith("ssh-rsa ")


def test_network_config_matches_any_nic_name():
    text = (RECIPES / "node" / "80-appliance.network").read_text()
    assert "Name=en* eth*" in text and "DHCP=yes" in text


EDITS = {
    # (file, edit, base system rebuilt?)
    "a package": ("recipe.toml", lambda t: t.replace('"curl",', '"curl", "less",'), True),
    "a path filter": ("recipe.toml", lambda t: t.replace('"/usr/share/info/*", ', ''), True),
    "the disk size": ("recipe.toml", lambda t: t.replace("size_gib = 2", "size_gib = 3"), False),
    "a unit file": ("appliance.service", lambda t: t + "\n# edited\n", False),
    "the default config": ("appliance.toml", lambda t: t.replace("rack.internal", "rack2.internal"), False),
    "the box's Vagrantfile": ("Vagrantfile.box", lambda t: t + "\n# edited\n", False),
}


@pytest.mark.parametrize("name, edit, base", EDITS.values(), ids=EDITS.keys())
def test_an_edit_rebuilds_the_image_and_only_package_edits_the_base(recipe_copy, name, edit, base):
    before = node_recipe.load(recipe_copy)
    hashes = before.hash(), before.base_hash()
    (recipe_copy / name).write_text(edit((recipe_copy / name).read_text()))
    after = node_recipe.load(recipe_copy)
    assert after.hash() != hashes[0]
    assert (after.base_hash() != hashes[1]) == base


BROKEN = {
    "a missing file": (lambda d: (d / "resolved.conf").unlink(), "resolved.conf"),
    "a relative target": (lambda d: _edit(d, '= "/etc/systemd/resolved.conf.d', '= "etc/systemd/resolved.conf.d'),
                          "absolute"),
    "a disk too small": (lambda d: _edit(d, "size_gib = 2", "size_gib = 0"), "from 1 to 64"),
    "no package list": (lambda d: _edit(d, "packages = [", "pkgs = ["), "packages"),
    "not TOML": (lambda d: _edit(d, "[disk]", "[disk"), "recipe.toml"),
}


def _edit(directory, old, new):
    path = directory / "recipe.toml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.mark.parametrize("breakage, message", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_recipe_is_refused_naming_the_problem(recipe_copy, breakage, message):
    breakage(recipe_copy)
    with pytest.raises(RecipeError, match=message):
        node_recipe.load(recipe_copy)
