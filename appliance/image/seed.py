"""A seed for the node image's first boot that makes it the PXE server of one rack segment.

    python -m appliance.image.seed --mac 52:54:00:77:00:01 --address 10.77.0.1/24 DIR
    python -m appliance.image.seed --mac … --address … --volume seed.img   # FAT, label APPLSEED

writes `appliance.toml` (DHCP, DNS, TFTP and HTTP boot on the segment, the API behind
nginx), `10-rack.link` (the NIC with that MAC is named `rack0`, whatever the machine
calls it) and `10-rack.network` (its static address). A directory is what a Vagrant
provisioner hands to `python -m appliance.image.firstboot --seed DIR`; a volume is
attached to the node as a second disk (or written to a USB stick) before its first boot.
See appliance/image/firstboot.py for how the seed is read.
"""

import argparse
import ipaddress
import sys
import tempfile
import tomllib
from pathlib import Path

from appliance import config
from appliance.image.disk import run
from appliance.image.firstboot import SEED_LABEL

NIC = "rack0"

CONFIG = """# The appliance as the PXE server of the rack segment {network} on {nic}.
[node]
name = "{name}"
domain = "{domain}"
address = "{ip}"

[osis]
enabled = true

[dhcp]
enabled = true
interface = "{nic}"
subnet = "{network}"
range = ["{first}", "{last}"]
dns_servers = ["{ip}"]

[dns]
enabled = true
listen = ["{ip}"]

[tftp]
enabled = true
listen = ["{ip}"]

[http]
enabled = true
nginx = true
listen = "{ip}"
port = 80

[appserver]
listen = "127.0.0.1"
port = 8000
enroll_action = "{action}"
"""

LINK = """[Match]
MACAddress={mac}

[Link]
Name={nic}
"""

NETWORK = """[Match]
Name={nic}

[Network]
Address={interface}
# IPv6 link-local stays: the appliance answers iPXE's router solicitations from it
IPv6AcceptRA=no
"""


def rack_seed(mac: str, address: str, first: str = "", last: str = "", domain: str = "rack.internal",
              name: str = "appliance", action: str = "reboot") -> dict[str, str]:
    """File name -> text of a seed for the segment of `address` (CIDR); the pool defaults
    to .100-.199 of it. The config is validated here: a bad value fails now, not at boot."""
    interface = ipaddress.IPv4Interface(address)
    hosts = list(interface.network.hosts())
    first = first or str(hosts[min(99, len(hosts) - 1)])
    last = last or str(hosts[min(198, len(hosts) - 1)])
    text = CONFIG.format(network=interface.network, nic=NIC, name=name, domain=domain, ip=interface.ip,
                         first=first, last=last, action=action)
    config.validate(tomllib.loads(text))
    return {"appliance.toml": text, "10-rack.link": LINK.format(mac=mac.lower(), nic=NIC),
            "10-rack.network": NETWORK.format(nic=NIC, interface=interface)}


def write_dir(files: dict[str, str], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def write_volume(files: dict[str, str], image: Path, size_kib: int = 1024) -> Path:
    """A FAT image labelled APPLSEED holding the files (mkfs.vfat -C + mcopy: no mount)."""
    image.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-n", SEED_LABEL, str(image), str(size_kib)])
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(write_dir(files, Path(tmp)).iterdir()):
            run(["mcopy", "-i", str(image), str(path), f"::/{path.name}"])
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.image.seed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--mac", required=True, help="MAC of the NIC on the rack segment")
    parser.add_argument("--address", required=True, help="the appliance's address there, CIDR (10.77.0.1/24)")
    parser.add_argument("--range", nargs=2, metavar=("FIRST", "LAST"), default=("", ""), help="DHCP pool")
    parser.add_argument("--domain", default="rack.internal")
    parser.add_argument("--enroll-action", default="reboot", choices=["reboot", "poweroff", "wait"])
    parser.add_argument("--volume", action="store_true",
                        help="TARGET is a FAT image to create, not a directory")
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    try:
        files = rack_seed(args.mac, args.address, *args.range, domain=args.domain, action=args.enroll_action)
    except (ValueError, config.ConfigError) as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    (write_volume if args.volume else write_dir)(files, args.target)
    print(f"seed: {args.target}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
