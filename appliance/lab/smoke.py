"""`make run`: the appliance on a private lab segment, checked from a machine on that segment.

Builds a switch (a namespace with bridge br0), plugs the appliance's namespace and a
machine's namespace into it, runs `appliance run` in the first and asks its API from
the second, prints what the machine saw, and tears everything down. PXE-booting a QEMU
machine on this segment and enrolling it is what the bootstrap work adds here.
"""

import argparse
import ipaddress
import json
import subprocess
import sys
import time

from appliance import config
from appliance.lab.netns import Netns


def _wait_for_health(machine: Netns, url: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        reply = machine.run(["curl", "-sf", "-m", "2", url], check=False)
        if reply.returncode == 0:
            return json.loads(reply.stdout)
        time.sleep(0.2)
    raise RuntimeError(f"the appliance did not answer {url} within {timeout:.0f} s")


def run_lab(cfg_path: str, timeout: float) -> int:
    cfg = config.load(cfg_path)
    address = cfg.node.address or ipaddress.IPv4Address(str(cfg.appserver.listen))
    switch, appl, machine = Netns.create("lab"), Netns.create("lab"), Netns.create("lab")
    try:
        switch.add_bridge("br0")
        switch.add_port("br0", appl, "eth0", address=f"{address}/24")
        switch.add_port("br0", machine, "eth0", address=f"{address + 1}/24")
        proc = appl.popen([sys.executable, "-m", "appliance", "run", "-c", cfg_path])
        url = f"http://{cfg.appserver.listen}:{cfg.appserver.port}/api/v1/health"
        health = _wait_for_health(machine, url, proc, timeout)
        print(f"\nlab: appliance {cfg.node.name}.{cfg.node.domain} at {address}, "
              f"seen from a machine at {address + 1} on the lab segment:")
        print(json.dumps(health, indent=2))
        print("lab: machines enrolled: none yet (PXE boot and enrollment are not built yet)")
        return 0
    finally:
        for ns in (machine, appl, switch):
            ns.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="etc/lab.toml")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args(argv)
    try:
        return run_lab(args.config, args.timeout)
    except (config.ConfigError, RuntimeError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
