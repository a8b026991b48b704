"""First boot of the node image: the initial config and its secrets, the seed, NIC renames.

The step that changes the machine itself (growing the root partition) runs only inside
the image: the boot tests check it there.
"""

import os
import subprocess
import sys

import pytest

from appliance import config
from appliance.image import firstboot, seed
from appliance.image.node import SOURCE
from appliance.image.recipe import RECIPES
from tests.fixtures.tools import require_tool

DEFAULT = (RECIPES / "node" / "appliance.toml").read_text()
MAC = "52:54:00:77:00:01"


def test_default_config_gets_three_fresh_secrets_and_is_valid():
    text, generated = firstboot.initial_config(DEFAULT, "default")
    assert sorted(generated) == ["appserver.enroll_token", "appserver.token", "xmpp.password"]
    cfg = config.validate(firstboot.tomllib.loads(text))
    secrets = {cfg.appserver.token, cfg.appserver.enroll_token, cfg.xmpp.password}
    assert len(secrets) == 3 and all(len(s) >= 32 for s in secrets)
    assert (cfg.http.nginx, str(cfg.http.listen), cfg.http.port) == (True, "0.0.0.0", 80)
    assert str(cfg.appserver.listen) == "127.0.0.1" and cfg.osis.enabled
    assert not cfg.dhcp.enabled  # never on a segment nobody named
    assert firstboot.initial_config(DEFAULT, "default")[0] != text  # each node its own


def test_secrets_a_seed_brings_are_kept():
    seeded = seed.rack_seed(MAC, "10.77.0.1/24")["appliance.toml"] + '\n[xmpp]\npassword = "given"\n'
    text, generated = firstboot.initial_config(seeded, "seed")
    cfg = config.validate(firstboot.tomllib.loads(text))
    assert cfg.xmpp.password == "given" and "xmpp.password" not in generated
    assert cfg.dhcp.enabled and cfg.dhcp.interface == "rack0"


BAD = {
    "a bad address": ('[dhcp]\nrange = ["10.0.0.300", "10.0.0.9"]\n', "dhcp.range[0]"),
    "an unknown key": ("[appserver]\nlisten_port = 8000\n", "appserver.listen_port"),
    "not TOML": ("[dhcp\n", "not valid TOML"),
}


@pytest.mark.parametrize("text, key", BAD.values(), ids=BAD.keys())
def test_a_bad_seed_config_is_refused_naming_the_key_and_nothing_is_written(tmp_path, text, key):
    target = tmp_path / "etc/appliance/appliance.toml"
    with pytest.raises(config.ConfigError) as err:
        firstboot.ensure_config(target, text, "seed")
    assert any(key in problem for problem in err.value.problems), err.value.problems
    assert not target.exists() and not list(tmp_path.rglob("*.toml*"))


def test_config_is_written_once_with_mode_0600(tmp_path, capsys):
    target = tmp_path / "etc/appliance/appliance.toml"
    firstboot.ensure_config(target, DEFAULT, "default")
    assert target.stat().st_mode & 0o777 == 0o600
    token = config.load(target).appserver.token
    assert f"API token (shown this once; it is in {target}): {token}" in capsys.readouterr().out
    target.write_text(target.read_text() + "\n# edited by the admin\n")
    before = target.read_text()
    firstboot.ensure_config(target, DEFAULT, "default")
    assert target.read_text() == before
    assert "exists: left as it is" in capsys.readouterr().out


def test_seed_directory_installs_network_files_and_root_keys(tmp_path):
    directory = seed.write_dir(seed.rack_seed(MAC, "10.77.0.1/24"), tmp_path / "seed")
    (directory / "authorized_keys").write_text("ssh-ed25519 AAAA admin@site\n")
    etc, home = tmp_path / "etc", tmp_path / "root"
    text = firstboot.apply_seed(directory, etc, home)
    assert text == (directory / "appliance.toml").read_text()
    assert sorted(p.name for p in (etc / "systemd/network").iterdir()) == ["10-rack.link", "10-rack.network"]
    keys = home / ".ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAA admin@site\n" and keys.stat().st_mode & 0o777 == 0o600
    renames = firstboot.link_renames(sorted((etc / "systemd/network").iterdir()))
    assert renames == {MAC: "rack0"}


def test_seed_volume_is_a_fat_image_labelled_applseed(tmp_path):
    image = seed.write_volume(seed.rack_seed(MAC, "10.77.0.1/24"), tmp_path / "seed.img")
    probe = subprocess.run([require_tool("blkid"), "-p", "-o", "export", str(image)], capture_output=True,
                           text=True, check=True, timeout=30).stdout
    assert "TYPE=vfat" in probe and "LABEL=APPLSEED" in probe
    toml = subprocess.run([require_tool("mtype"), "-i", str(image), "::/appliance.toml"], capture_output=True,
                          text=True, check=True, timeout=30).stdout
    assert 'interface = "rack0"' in toml and 'address = "10.77.0.1"' in toml


@pytest.mark.parametrize("address", ["10.77.0.300/24", "10.77.0.1/33", "rack"])
def test_seed_refuses_a_bad_address(address, tmp_path):
    assert seed.main(["--mac", MAC, "--address", address, str(tmp_path / "seed")]) == 2
    assert not (tmp_path / "seed").exists()


def test_a_nic_matched_by_mac_is_renamed_at_once(netns):
    """In a namespace: a NIC with the seed's MAC gets the .link name; another keeps its own."""
    ns = netns()
    ns.ip("link", "add", "ens3", "address", MAC, "type", "veth", "peer", "name", "ens4",
          "address", "52:54:00:77:00:02")
    ns.ip("link", "set", "ens3", "up")
    code = ("from appliance.image import firstboot; "
            f"firstboot.rename_nics({{'{MAC}': 'rack0'}})")
    result = ns.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SOURCE)})
    assert "NIC ens3 (52:54:00:77:00:01) renamed rack0" in result.stdout
    names = {line.split(": ")[1].split("@")[0] for line in ns.ip("-o", "link", "show").splitlines()}
    assert names == {"lo", "rack0", "ens4"}
