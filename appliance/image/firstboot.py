"""The node image's first-boot step: initial config with fresh secrets, the seed, a grown root.

Run as `python -m appliance.image.firstboot` by appliance-firstboot.service at every
boot, before the network and the appliance start; each step does nothing once done.

The seed is a volume labelled APPLSEED (a FAT USB stick, a second virtual disk) or a
directory (`--seed DIR`, e.g. from a Vagrant provisioner), holding any of:

    appliance.toml              the initial config, instead of /usr/share/appliance/appliance.toml
    *.network *.link *.netdev   systemd-networkd files, installed into /etc/systemd/network/;
                                a .link that matches a NIC by MACAddress= renames it (Name=)
                                at once, so that [dhcp] interface can name it
    authorized_keys             SSH keys that may log in as root

The initial config is written once, when /etc/appliance/appliance.toml is absent: every
secret left empty ([appserver] token and enroll_token, [xmpp] password) is generated,
the whole is validated (a bad seed config stops here, naming the key, and writes
nothing) and written as the effective config with every key documented, mode 0600.
The API token is printed on the console once, when it is generated.
"""

import argparse
import configparser
import os
import secrets
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from appliance import config

SEED_LABEL = "APPLSEED"
DEFAULT_CONFIG = Path("/usr/share/appliance/appliance.toml")
NETWORK_SUFFIXES = (".network", ".link", ".netdev")
SECRETS = (("appserver", "token"), ("appserver", "enroll_token"), ("xmpp", "password"))
GROW_MIN_BYTES = 16 << 20


def say(text: str) -> None:
    print(f"firstboot: {text}", flush=True)


def initial_config(text: str, origin: str) -> tuple[str, list[str]]:
    """The config file to write from `text` (TOML): empty secrets generated, validated,
    rendered with every key documented. Returns (file text, names of the generated secrets);
    raises config.ConfigError naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise config.ConfigError([f"{origin}: not valid TOML: {exc}"]) from None
    generated = []
    for table, key in SECRETS:
        section = data.setdefault(table, {})
        if isinstance(section, dict) and not section.get(key):
            section[key] = secrets.token_urlsafe(24)
            generated.append(f"{table}.{key}")
    cfg = config.validate(data)
    header = (f"# Written at first boot from {origin}; the secrets generated then: "
              f"{', '.join(generated) or 'none'}.\n# Every key with its default is listed; "
              "see `appliance config show --defaults`.\n\n")
    return header + config.render(cfg), generated


def write_config(target: Path, text: str) -> None:
    """Write atomically with mode 0600 (the file holds the secrets)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".appliance.toml.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def network_files(seed: Path) -> list[Path]:
    return sorted(p for p in seed.iterdir() if p.suffix in NETWORK_SUFFIXES and p.is_file())


def install_network(seed: Path, target: Path) -> list[Path]:
    """Copy the seed's networkd files into `target` (/etc/systemd/network)."""
    installed = []
    target.mkdir(parents=True, exist_ok=True)
    for path in network_files(seed):
        (target / path.name).write_bytes(path.read_bytes())
        installed.append(target / path.name)
    return installed


def link_renames(link_files: list[Path]) -> dict[str, str]:
    """MAC (lower case) -> new NIC name, from .link files with [Match] MACAddress= and [Link] Name=."""
    renames = {}
    for path in link_files:
        if path.suffix != ".link":
            continue
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        try:
            parser.read_string(path.read_text())
        except configparser.Error as exc:
            say(f"{path.name}: not read ({exc})")
            continue
        macs = parser.get("Match", "MACAddress", fallback="").split()
        name = parser.get("Link", "Name", fallback="").strip()
        if name:
            renames.update({mac.lower(): name for mac in macs})
    return renames


def rename_nics(renames: dict[str, str], sys_net: Path = Path("/sys/class/net")) -> None:
    """Give NICs their .link names now (udev only applies .link files when a NIC appears)."""
    for dev in sorted(sys_net.iterdir()) if renames else []:
        try:
            mac = (dev / "address").read_text().strip().lower()
        except OSError:
            continue
        new = renames.get(mac)
        if new and new != dev.name:
            _run(["ip", "link", "set", "dev", dev.name, "down"])
            _run(["ip", "link", "set", "dev", dev.name, "name", new])
            say(f"NIC {dev.name} ({mac}) renamed {new}")


def _run(cmd: list[str], check: bool = True, stdin_text: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class Seed:
    """The seed directory: given, or the APPLSEED volume mounted read-only while in use."""

    def __init__(self, directory: Path | None, label: str):
        self.directory, self.label, self._mounted = directory, label, None

    def __enter__(self) -> Path | None:
        if self.directory is not None:
            return self.directory
        _run(["udevadm", "settle", "--timeout=10"], check=False)
        device = _run(["blkid", "-L", self.label], check=False).stdout.strip()
        if not device:
            return None
        self._mounted = Path(tempfile.mkdtemp(prefix="appliance-seed.", dir="/run"))
        _run(["mount", "-o", "ro", device, str(self._mounted)])
        say(f"seed volume {device} ({self.label})")
        return self._mounted

    def __exit__(self, *exc) -> None:
        if self._mounted is not None:
            _run(["umount", str(self._mounted)], check=False)
            self._mounted.rmdir()


def apply_seed(seed: Path | None, etc: Path, home: Path = Path("/root")) -> str | None:
    """Network files and root's SSH keys (into `home`) from the seed; returns its config text, if any."""
    if seed is None:
        return None
    installed = install_network(seed, etc / "systemd/network")
    if installed:
        say(f"network files installed: {', '.join(p.name for p in installed)}")
        rename_nics(link_renames(installed))
    keys = seed / "authorized_keys"
    if keys.is_file():
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_bytes(keys.read_bytes())
        (ssh / "authorized_keys").chmod(0o600)
        say("root's SSH keys installed from the seed")
    seeded = seed / "appliance.toml"
    return seeded.read_text() if seeded.is_file() else None


def ensure_config(target: Path, seeded: str | None, origin: str) -> None:
    if target.exists():
        say(f"{target} exists: left as it is")
        return
    text, generated = initial_config(seeded if seeded is not None else DEFAULT_CONFIG.read_text(), origin)
    write_config(target, text)
    say(f"initial config written to {target} ({len(generated)} secrets generated)")
    token = config.load(target).appserver.token
    if "appserver.token" in generated:
        say(f"API token (shown this once; it is in {target}): {token}")


def grow_root() -> None:
    """Grow the root partition (the disk's last) and its ext4 to the end of the disk."""
    source = _run(["findmnt", "-n", "-o", "SOURCE", "/"]).stdout.strip()
    part = Path("/sys/class/block") / Path(os.path.realpath(source)).name
    if not (part / "partition").exists():
        return
    disk = part.resolve().parent
    number = int((part / "partition").read_text())
    end = (int((part / "start").read_text()) + int((part / "size").read_text())) * 512
    free = int((disk / "size").read_text()) * 512 - end
    if free < GROW_MIN_BYTES:
        return
    device = f"/dev/{disk.name}"
    _run(["sfdisk", "--quiet", "--force", "--no-reread", "--no-tell-kernel", "-N", str(number), device],
         stdin_text=", +\n")  # the same start, as large as the disk allows
    _run(["partx", "--update", "--nr", str(number), device])
    _run(["resize2fs", source])
    say(f"root file system grown by {free / 2**30:.1f} GiB to the end of {device}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="appliance-firstboot", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=Path, help="a seed directory instead of the APPLSEED volume")
    parser.add_argument("--label", default=SEED_LABEL, help=f"seed volume label (default {SEED_LABEL})")
    parser.add_argument("--config", type=Path, default=config.DEFAULT_PATH, help="the config to write")
    args = parser.parse_args(argv)
    try:
        with Seed(args.seed, args.label) as seed:
            seeded = apply_seed(seed, Path("/etc"))
            origin = str(seed / "appliance.toml") if seeded is not None else str(DEFAULT_CONFIG)
            ensure_config(args.config, seeded, origin)
    except config.ConfigError as exc:
        say("the initial config is not valid, nothing written:\n  " + "\n  ".join(exc.problems))
        return 2
    try:
        grow_root()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        say(f"growing the root file system: {exc}")  # the node still boots; the appliance still starts
    return 0


if __name__ == "__main__":
    sys.exit(main())
