"""The node image boots under QEMU on a namespace segment, its appliance answers, and it PXE-boots others.

    switch namespace (br0) ── tapN0 ── the node image (QEMU, BIOS or UEFI, TCG)
            │               ── tap0 ── a PXE client (appliance.lab.machines), enrolls
            └── veth ── probe namespace 10.77.0.250: curl, dig (a user on the segment)

- PXE: the node boots with a seed volume (`appliance.image.seed`, a second disk labelled
  APPLSEED) that names the NIC with its MAC `rack0`, gives it 10.77.0.1/24 and enables
  DHCP, DNS, TFTP and HTTP boot there; a lab machine then PXE-boots from the appliance
  inside the VM and enrolls: the real proof. Once on SeaBIOS, once on OVMF (the
  client with the same firmware as the node).
- Vagrant box: the box's disk boots with the default config and two NICs, as `vagrant
  up` gives it: the first gets its address from a DHCP server on br1 (Vagrant's
  management network, 192.168.121.0/24), the API answers there on port 80, and `vagrant
  ssh` works: the vagrant user with the insecure key and passwordless sudo finds the
  first boot's work done (secrets, host keys, the root grown to its disk). Then the
  repo's Vagrantfile provisioner, run through ssh as Vagrant runs it, makes the second
  NIC (on br0) the rack segment's 10.77.0.1 with every service up.

Each boot gets a copy-on-write overlay (4 GiB, so that first boot grows the root).
Times are printed (`-s` shows them): boot to health, PXE power-on to enrolled, provisioning.
"""

import json
import shutil
import subprocess
import tarfile
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from appliance.image import seed
from appliance.image.node import SOURCE
from appliance.lab import machines
from appliance.lab.netns import alive
from tests.fixtures.tools import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # the first one may build the image
NODE_MAC = "52:54:00:77:00:01"
MGMT_MAC = "52:54:00:12:00:01"
VAGRANT_APPLIANCE_MAC, VAGRANT_APPLIANCE_IP = "52:54:00:77:00:01", "10.77.0.1"  # as in the Vagrantfile
NODE_IP = "10.77.0.1"
PROBE = "10.77.0.250/24"
BOOT_TIMEOUT = 300
ENROLL_TIMEOUT = 240
SSH_WAIT = 120  # seconds for the box's sshd to accept, once the appliance answers
VAGRANT_GEMS = Path("/usr/share/rubygems-integration/all/gems")  # Debian's vagrant package


def _overlay(base: Path, tmp_path: Path, fmt: str = "qcow2") -> Path:
    disk = tmp_path / "node.qcow2"
    subprocess.run([require_tool("qemu-img"), "create", "-q", "-f", "qcow2", "-b", str(base), "-F", fmt,
                    str(disk), "4G"], check=True, timeout=60)
    return disk


def _boot_node(switch, firmware: str, disk: Path, tmp_path: Path, seed_image: Path | None = None,
               nics: tuple[tuple[str, str], ...] = (("br0", NODE_MAC),)):
    """Power on the node image with a NIC (bridge, MAC) per `nics`; returns (process,
    serial log). The process's `powered_on` is its start time (time.monotonic())."""
    serial = tmp_path / "node.serial.log"
    argv = [require_tool("qemu-system-x86_64"), "-m", "1024", "-smp", "2", "-display", "none",
            "-monitor", "none", "-serial", f"file:{serial}",
            "-drive", f"file={disk},if=none,id=d0,format=qcow2", "-device", "virtio-blk-pci,drive=d0,bootindex=0"]
    for i, (bridge, mac) in enumerate(nics):
        switch.add_tap(f"tapN{i}", bridge)
        argv += ["-netdev", f"tap,id=n{i},ifname=tapN{i},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev=n{i},mac={mac},romfile="]
    if seed_image is not None:
        argv += ["-drive", f"file={seed_image},if=none,id=d1,format=raw,readonly=on",
                 "-device", "virtio-blk-pci,drive=d1"]
    if firmware == "uefi":
        vars_file = tmp_path / "node.OVMF_VARS.fd"
        shutil.copyfile(machines.OVMF_VARS, vars_file)
        argv += ["-machine", "q35,accel=tcg",
                 "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={machines.OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    else:
        argv += ["-machine", "pc,accel=tcg"]
    with open(tmp_path / "node.qemu.log", "wb") as errors:
        proc = switch.popen(argv, stdin=subprocess.DEVNULL, stdout=errors, stderr=subprocess.STDOUT)
    proc.powered_on = time.monotonic()
    return proc, serial


def _get(probe, url: str, token: str = "", method: str = "GET") -> tuple[int, str]:
    cmd = ["curl", "-s", "-m", "5", "-X", method, "-o", "-", "-w", "\n%{http_code}", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    result = probe.run(cmd, check=False, timeout=30)
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


def _wait_healthy(probe, proc, serial: Path, address: str) -> float:
    """Seconds from the node's power-on until its health answers 200 on `address`."""
    started = proc.powered_on
    while time.monotonic() - started < BOOT_TIMEOUT:
        assert proc.poll() is None, f"the node stopped (exit {proc.returncode}){_tail(serial)}"
        code, body = _get(probe, f"http://{address}/api/v1/health")
        if code == 200:
            assert json.loads(body)["status"] == "ok"
            return time.monotonic() - started
        time.sleep(1)
    pytest.fail(f"no healthy appliance at {address} after {BOOT_TIMEOUT} s{_tail(serial)}")


def _tail(path: Path, size: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(none)"
    return f"\n--- {path.name}:\n{text[-size:]}"


@pytest.fixture
def segment_with_probe(segment):
    seg = segment(hosts=1, addressed=[])
    probe = seg.hosts[0]
    probe.ip("addr", "add", PROBE, "dev", "eth0")
    return seg, probe


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_node_image_serves_a_segment_and_a_machine_pxe_boots_from_it_and_enrolls(
        firmware, node_image, segment_with_probe, tmp_path):
    seg, probe = segment_with_probe
    for tool in ("curl", "dig"):
        require_tool(tool)
    seed_image = seed.write_volume(seed.rack_seed(NODE_MAC, f"{NODE_IP}/24", action="poweroff"),
                                   tmp_path / "seed.img")
    disk = _overlay(node_image.output / "pylabs-node.qcow2", tmp_path)
    node, serial = _boot_node(seg.switch, firmware, disk, tmp_path, seed_image)
    healthy = _wait_healthy(probe, node, serial, NODE_IP)
    print(f"\n{firmware}: node image power-on to /api/v1/health answering: {healthy:.0f} s")
    console = serial.read_text(errors="replace")
    for line in ("firstboot: seed volume", f"({NODE_MAC}) renamed rack0",
                 "firstboot: root file system grown"):
        assert line in console, line + _tail(serial)

    client = machines.start(seg.switch, 0, firmware, tmp_path)
    log = Path(client["log"])
    enrolled = _wait_enrolled(probe, client, log, serial)
    print(f"{firmware}: PXE client power-on to enrolled: {enrolled['seconds']:.0f} s")
    machine = enrolled["machine"]
    assert machine["uuid"] == client["uuid"] and machine["state"] == "ENROLLED"
    assert [n["mac"] for n in machine["interfaces"]] == [client["mac"]]
    assert [d["serial"] for d in machine["disks"]] == [client["disk_serial"]]
    assert machine["ip"].startswith("10.77.0.1") and machine["hostname"]
    assert _resolve(probe, f"{machine['hostname']}.rack.internal") == [machine["ip"]]
    _wait_exit(client["pid"], 60, log)  # enroll_action = poweroff
    assert "enroll: done action=poweroff" in log.read_text(errors="replace")


def _wait_enrolled(probe, client: dict, log: Path, serial: Path) -> dict:
    started = time.monotonic()
    while time.monotonic() - started < ENROLL_TIMEOUT:
        code, body = _get(probe, f"http://{NODE_IP}/api/v1/machines")
        if code == 200:
            found = [m for m in json.loads(body) if m.get("serial") == client["serial"]]
            if found:
                return {"machine": found[0], "seconds": time.monotonic() - started}
        time.sleep(1)
    pytest.fail(f"the PXE client did not enroll in {ENROLL_TIMEOUT} s{_tail(log)}{_tail(serial)}")


def _resolve(probe, name: str) -> list[str]:
    """The node's A answer for `name`. DNS follows the store (its record is written before
    the machine shows ENROLLED, and applied as soon as it is): allow it a moment on a slow VM."""
    deadline = time.monotonic() + 3
    while True:
        answer = probe.run(["dig", "+short", f"@{NODE_IP}", name]).stdout.split()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def _wait_exit(pid: int, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(pid), f"the PXE client did not power off{_tail(log)}"


def test_vagrant_box_boots_vagrant_can_ssh_in_and_the_lab_provisioner_makes_it_serve_the_rack(
        node_image, segment_with_probe, netns, tmp_path):
    """As `vagrant up` runs it: NIC 1 on the management network (192.168.121.0/24, a DHCP
    server, as vagrant-libvirt's), NIC 2 on the rack network (br1); then the Vagrantfile's
    provisioner, run as Vagrant runs it (root, through ssh), makes it serve the rack."""
    seg, probe = segment_with_probe  # br0 is the rack segment here: the probe is 10.77.0.250
    mgmt = netns()
    seg.switch.add_bridge("br1")
    seg.switch.add_port("br1", mgmt, "eth0", address="192.168.121.1/24")
    with tarfile.open(node_image.output / "pylabs-node.box") as box:
        box.extract("box.img", tmp_path, filter="data")
    leases = _dhcp_server(mgmt, tmp_path, "192.168.121.100,192.168.121.199")
    disk = _overlay(tmp_path / "box.img", tmp_path)
    node, serial = _boot_node(seg.switch, "bios", disk, tmp_path,
                              nics=(("br1", MGMT_MAC), ("br0", VAGRANT_APPLIANCE_MAC)))
    address = _wait_lease(leases, node, serial, MGMT_MAC)
    healthy = _wait_healthy(mgmt, node, serial, address)
    print(f"\nbox (bios, DHCP): power-on to /api/v1/health answering: {healthy:.0f} s")
    ssh = _ssh(mgmt, address, tmp_path)

    cfg = tomllib.loads(ssh("sudo -n cat /etc/appliance/appliance.toml"))
    token = cfg["appserver"]["token"]
    assert len(token) >= 32 and len(cfg["appserver"]["enroll_token"]) >= 32
    assert ssh("sudo -n stat -c %a /etc/appliance/appliance.toml").strip() == "600"
    assert ssh("systemctl is-active appliance").strip() == "active"
    assert int(ssh("df -B1 --output=size / | tail -n 1")) > 3 << 30  # grown to the 4 GiB disk
    assert len(ssh("cat /etc/machine-id").strip()) == 32
    assert ssh("ls /etc/ssh").count("_key.pub") == 3  # made by this node at first boot
    guid = str(uuid.uuid4())
    assert _get(mgmt, f"http://{address}/api/v1/machines/{guid}", method="DELETE")[0] == 401
    assert _get(mgmt, f"http://{address}/api/v1/machines/{guid}", token, method="DELETE")[0] == 404

    started = time.monotonic()
    ssh("sudo -n bash -s", stdin=vagrant_provisioner(), timeout=300)
    print(f"box: the Vagrantfile's provisioner, to serving the rack: {time.monotonic() - started:.0f} s")
    code, body = _get(probe, f"http://{VAGRANT_APPLIANCE_IP}/api/v1/health")
    assert code == 200, body
    health = json.loads(body)
    assert health["status"] == "ok" and {"dhcp", "dns", "tftp", "http", "appserver"} <= set(health["components"])


def vagrant_provisioner() -> str:
    """The appliance's shell provisioner from the repo's Vagrantfile, its Ruby values filled in."""
    text = (SOURCE / "Vagrantfile").read_text()
    script = text.split("<<~SHELL\n", 1)[1].split("\n    SHELL\n", 1)[0]
    script = "\n".join(line.removeprefix("      ") for line in script.splitlines()) + "\n"
    filled = script.replace("#{APPLIANCE_MAC}", VAGRANT_APPLIANCE_MAC).replace("#{APPLIANCE_IP}",
                                                                                VAGRANT_APPLIANCE_IP)
    assert "#{" not in filled, filled
    return filled


def _ssh(host, address: str, tmp_path: Path):
    """`vagrant ssh`: the vagrant user with Vagrant's insecure key."""
    require_tool("vagrant")
    insecure = sorted(VAGRANT_GEMS.glob("vagrant-[0-9]*/keys/vagrant"))
    assert insecure, f"Vagrant's insecure private key is not under {VAGRANT_GEMS} (Debian package vagrant)"
    key = tmp_path / "vagrant.key"
    key.write_bytes(insecure[-1].read_bytes())
    key.chmod(0o600)

    def attempt(command: str, stdin: str | None = None, timeout: float = 120):
        return host.run([require_tool("ssh"), "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
                         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                         f"vagrant@{address}", command], input=stdin, check=False, timeout=timeout)

    def run(command: str, stdin: str | None = None, timeout: float = 120) -> str:
        result = attempt(command, stdin, timeout)
        assert result.returncode == 0, f"ssh {command}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result.stdout

    # As `vagrant up` does: wait for the guest's sshd, which may start after the appliance
    # answers (first boot makes its host keys; it once refused the first connection in CI).
    deadline = time.monotonic() + SSH_WAIT
    while (first := attempt("true", timeout=60)).returncode != 0 and time.monotonic() < deadline:
        assert "Permission denied" not in first.stderr, first.stderr  # up, but the key is refused
        time.sleep(2)
    return run


def _dhcp_server(host, tmp_path: Path, pool: str) -> Path:
    """dnsmasq on `host`'s eth0 only, DHCP only: the site's (or Vagrant's) DHCP."""
    leases = tmp_path / "dnsmasq.leases"
    host.popen([require_tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                "--interface=eth0", "--bind-interfaces", "--except-interface=lo",
                f"--dhcp-range={pool},255.255.255.0,10m", f"--dhcp-leasefile={leases}",
                f"--pid-file={tmp_path / 'dnsmasq.pid'}", "--dhcp-authoritative", "--no-ping", "--user=root",
                "--log-facility=-", "--log-dhcp"], stderr=(tmp_path / "dnsmasq.log").open("w"))
    return leases


def _wait_lease(leases: Path, proc, serial: Path, mac: str) -> str:
    started = time.monotonic()
    while time.monotonic() - started < BOOT_TIMEOUT:
        assert proc.poll() is None, f"the node stopped{_tail(serial)}"
        for line in leases.read_text().splitlines() if leases.exists() else []:
            fields = line.split()
            if fields[1] == mac:
                return fields[2]
        time.sleep(1)
    pytest.fail(f"the node took no DHCP lease in {BOOT_TIMEOUT} s{_tail(serial)}")
