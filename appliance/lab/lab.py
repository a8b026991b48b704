"""`appliance lab up|status|down`: the appliance and QEMU machines on a private segment.

    switch namespace (bridge br0) ── veth ── appliance namespace: eth0 10.77.0.1/24,
         │                                   `appliance run` with DHCP, DNS, TFTP,
         └── tap0, tap1, … ── QEMU machines  HTTP boot, OSIS and the app server

Nothing touches the machine's own interfaces. The machines PXE-boot (SeaBIOS with the
iPXE ROM, or OVMF with its own PXE fetching ipxe.efi over TFTP), boot the enrollment
image over HTTP, enroll and power off. With `--loader pxelinux` DHCP hands BIOS machines
pxelinux.0 even though their ROM is iPXE (`ipxe_script = false`): iPXE chains it as any
PXE ROM would, and pxelinux reads its per-MAC config, kernel and initrd over TFTP.
`up` waits for the enrollments and prints the inventory; the lab keeps running until
`down`, which stops every process by its PID and deletes the namespaces. The lab's
state (names, PIDs) is kept in LAB_DIR/lab.json.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.lab import machines
from appliance.lab.netns import Netns, NetnsError, alive
from appliance.services.commands import table

LAB_DIR = Path(os.environ.get("APPLIANCE_LAB_DIR", "/var/lib/appliance-lab"))
ADDRESS, SUBNET = "10.77.0.1", "10.77.0.0/24"
CONFIG = """# The lab's appliance, written by `appliance lab up`.
[node]
name = "appliance"
domain = "lab.test"
address = "{address}"
state_dir = "{state}"

[osis]
enabled = true

[dhcp]
enabled = true
interface = "eth0"
subnet = "{subnet}"
range = ["10.77.0.100", "10.77.0.199"]
{loader}
[dns]
enabled = true
listen = ["{address}"]

[tftp]
enabled = true
listen = ["{address}"]
root = "{state}/tftp"

[http]
enabled = true
root = "{state}/http"

[appserver]
listen = "{address}"
port = 80
token = "{admin}"
enroll_token = "{enroll}"
enroll_action = "poweroff"
"""


# [dhcp] lines per BIOS loader: iPXE ROMs get the script URL by default; for pxelinux
# they get pxelinux.0 like any PXE ROM (QEMU has no non-iPXE PXE ROM for BIOS).
LOADERS = {"ipxe": "", "pxelinux": 'bios_boot_file = "pxelinux.0"\nipxe_script = false\n'}


class LabError(RuntimeError):
    """The lab could not be brought up, or is not there."""


@dataclass
class LabState:
    switch: str
    appliance: str
    appliance_pid: int
    admin_token: str
    vms: list[dict] = field(default_factory=list)  # name, pid, mac, serial, log
    capture_pid: int = 0


def _say(text: str) -> None:
    print(f"lab: {text}", flush=True)


def _state_file() -> Path:
    return LAB_DIR / "lab.json"


def load_state() -> LabState:
    try:
        return LabState(**json.loads(_state_file().read_text()))
    except FileNotFoundError:
        raise LabError(f"no lab is up (no {_state_file()})") from None


def up(vms: int, firmware: str, timeout: float, loader: str = "ipxe") -> int:
    if loader != "ipxe" and firmware != "bios":
        raise LabError(f"--loader {loader} is for BIOS machines (UEFI ones chain ipxe.efi)")
    if _state_file().exists():
        raise LabError(f"a lab is already up ({_state_file()}): `appliance lab down` first")
    state_dir = LAB_DIR / "state"
    for old in state_dir.glob("*") if state_dir.exists() else ():
        if old.name in ("cache", "http"):  # a new lab has a new inventory, but keeps the image
            continue
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    for sub in ("tftp", "http"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    admin, enroll = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    cfg = LAB_DIR / "appliance.toml"
    cfg.write_text(CONFIG.format(address=ADDRESS, subnet=SUBNET, state=state_dir, admin=admin, enroll=enroll,
                              loader=LOADERS[loader]))
    _build_image(cfg)
    switch, appl = Netns.create("lab"), Netns.create("lab")
    lab = LabState(switch.name, appl.name, 0, admin)
    try:
        switch.add_bridge("br0")
        switch.add_port("br0", appl, "eth0", address=f"{ADDRESS}/24")
        lab.capture_pid = _capture(switch)
        log = open(LAB_DIR / "appliance.log", "ab")  # noqa: SIM115 - the appliance keeps it
        lab.appliance_pid = appl.popen([sys.executable, "-m", "appliance", "run", "-c", str(cfg)],
                                       stdout=log, stderr=log, start_new_session=True).pid
        _save(lab)
        _wait_healthy(appl, timeout=30)
        _say(f"appliance up at {ADDRESS} (log: {LAB_DIR / 'appliance.log'})")
        for i in range(vms):
            lab.vms.append(machines.start(switch, i, firmware, LAB_DIR))
            _save(lab)
            _say(f"machine {lab.vms[-1]['name']} ({firmware}, {loader}) powered on, "
                 f"serial {lab.vms[-1]['serial']}")
        _wait_enrolled(lab, appl, timeout)
    except BaseException:
        _say("bringing the lab down after the failure above")
        down()
        raise
    print_inventory(lab, appl)
    return 0


def _capture(switch: Netns) -> int:
    """tcpdump on the lab's bridge into LAB_DIR/segment.pcap (headers only, 50 MB at most),
    for when a machine does not enroll."""
    pcap = LAB_DIR / "segment.pcap"
    cmd = ["tcpdump", "-Z", "root", "-i", "br0", "-U", "-s", "512", "-C", "50", "-W", "1", "-w", str(pcap)]
    proc = switch.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)
    return proc.pid


def _build_image(cfg: Path) -> None:
    """Into [http].root/enroll/, where the boot scripts point."""
    _say("building the enrollment image (cached after the first time)")
    result = subprocess.run([sys.executable, "-m", "appliance", "image", "build", "enroll",
                             "-c", str(cfg)], text=True, capture_output=True)
    if result.returncode != 0:
        raise LabError(f"enrollment image: {result.stderr.strip() or result.stdout.strip()}")


def _api(appl: Netns, path: str, token: str = "") -> object:
    cmd = ["curl", "-sf", "-m", "5", f"http://{ADDRESS}{path}"]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    result = appl.run(cmd, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _wait_healthy(appl: Netns, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _api(appl, "/api/v1/health"):
            return
        time.sleep(0.3)
    raise LabError(f"the appliance did not come up in {timeout:.0f} s: see {LAB_DIR / 'appliance.log'}")


def _wait_enrolled(lab: LabState, appl: Netns, timeout: float) -> None:
    deadline, waiting = time.monotonic() + timeout, {vm["serial"]: vm for vm in lab.vms}
    while waiting and time.monotonic() < deadline:
        for machine in _api(appl, "/api/v1/machines") or []:
            vm = waiting.pop(machine.get("serial"), None)
            if vm is not None:
                _say(f"machine {vm['name']} enrolled as {machine['hostname']} ({machine['ip']}) "
                     f"after {time.time() - vm['started']:.0f} s")
        time.sleep(1)
    if waiting:
        logs = ", ".join(vm["log"] for vm in waiting.values())
        raise LabError(f"{len(waiting)} machine(s) did not enroll in {timeout:.0f} s: see {logs}, "
                       f"{LAB_DIR / 'appliance.log'} and the capture {LAB_DIR / 'segment.pcap'}")


def print_inventory(lab: LabState, appl: Netns) -> None:
    rows = _api(appl, "/api/v1/machines") or []
    print("\n" + table(rows), end="")
    print("\n`appliance lab status` shows more, `appliance lab down` stops the lab.")


def status() -> int:
    lab = load_state()
    appl = Netns(lab.appliance)
    health = _api(appl, "/api/v1/health")
    _say(f"appliance {ADDRESS}: {health['status'] if health else 'not answering'}")
    for vm in lab.vms:
        running = alive(vm["pid"])
        _say(f"machine {vm['name']} ({vm['mac']}, serial {vm['serial']}): "
             f"{'running' if running else 'powered off'}")
    print_inventory(lab, appl)
    return 0


def down() -> int:
    try:
        lab = load_state()
    except LabError:
        _say("no lab is up")
        return 0
    for pid in [vm["pid"] for vm in lab.vms] + [lab.appliance_pid, lab.capture_pid]:
        _stop(pid)
    for name in (lab.appliance, lab.switch):
        try:
            Netns(name).close()
        except NetnsError as exc:
            _say(f"namespace {name}: {exc}")
    _state_file().unlink(missing_ok=True)
    _say("down")
    return 0


def _save(lab: LabState) -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps(asdict(lab), indent=2))


def _stop(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; by PID only."""
    if not pid or not alive(pid):
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, 9)
