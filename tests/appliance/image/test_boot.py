"""The real thing: a QEMU machine boots the enrollment image on a namespace segment and enrolls.

The segment's one host plays the appliance: dnsmasq hands out addresses (inside the
namespace only) and `enroll_stub.py` records the POST and answers poweroff. The machine
must POST its facts as the contract says and then power itself off.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.tools import require_tool

UUID = "5a1e0b1c-2d3e-4f50-8a9b-0c1d2e3f4a5b"
TOKEN = "t0k"
APPLIANCE = "10.77.0.1"
PORT = 8080
BOOT_TIMEOUT = 120
DISK_MB = 64
MAC_E1000 = "52:54:00:12:34:56"
MAC_VIRTIO = "52:54:00:ab:cd:ef"

CASES = {
    "e1000-virtio-blk-no-bootif": {
        "nics": [("e1000", MAC_E1000, "e1000")],
        "bootif": None,
        "boot_mac": MAC_E1000,  # no BOOTIF: the first NIC that got an address
        "api_failures": 1,  # the first POST gets 503: the machine must retry
        "smbios": ["type=1,manufacturer=PyLabs,product=Rack-1U,serial=SER-123,uuid=" + UUID],
        "disks": [("virtio-blk-pci", "DISK-9", "vda")],
        "expect": {"serial": "SER-123", "vendor": "PyLabs", "product": "Rack-1U"},
    },
    "virtio-net-bootif-beside-e1000-nvme-sata": {
        "nics": [("e1000", MAC_E1000, "e1000"), ("virtio-net-pci", MAC_VIRTIO, "virtio_net")],
        "bootif": MAC_VIRTIO,
        "boot_mac": MAC_VIRTIO,
        "api_failures": 0,
        # serials with spaces, quotes and a backslash: the JSON must still parse
        "smbios": ["type=1,serial=SER 1\"2\\3,uuid=" + UUID, 'type=2,serial=BRD "7"',
                   "type=3,serial=CH 9"],
        "disks": [("virtio-blk-pci", "DISK-9", "vda"), ("nvme", "NVME-3", "nvme0n1"),
                  ("ide-hd", "SATA-7", "sda")],
        "expect": {"serial": 'SER 1"2\\3', "board_serial": 'BRD "7"', "chassis_serial": "CH 9"},
    },
}

KEYS = {"uuid", "serial", "vendor", "product", "board_serial", "chassis_serial", "cpus",
        "cpu_model", "memory_mb", "disks", "interfaces"}
DISK_KEYS = {"name", "size_bytes", "serial", "model", "rotational"}
NIC_KEYS = {"mac", "name", "driver", "link", "ip", "boot", "lldp_chassis", "lldp_port"}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_machine_boots_the_image_posts_its_facts_and_powers_off(case, enroll_image, segment, tmp_path):
    seg = segment(hosts=1)  # host 0 is the appliance, 10.77.0.1 on eth0
    leases, record = _serve(seg.hosts[0], tmp_path, case["api_failures"])
    serial_log = tmp_path / "serial.log"
    argv = _qemu(case, enroll_image.output, tmp_path, serial_log, seg.switch)
    started = time.monotonic()
    qemu = seg.switch.popen(argv, stdin=subprocess.DEVNULL, stdout=(tmp_path / "qemu.out").open("w"),
                            stderr=subprocess.STDOUT)

    def tail() -> str:
        return "\nserial log tail:\n" + serial_log.read_text(errors="replace")[-4000:]

    try:
        qemu.wait(timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"QEMU did not power off within {BOOT_TIMEOUT} s{tail()}")
    seconds = time.monotonic() - started
    print(f"boot to power-off: {seconds:.1f} s")
    assert "enroll: done action=poweroff" in serial_log.read_text(errors="replace"), tail()
    posts = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    failures = case["api_failures"]
    assert [p["status"] for p in posts] == [503] * failures + [200], f"POSTs answered{tail()}"
    assert [p["body"] for p in posts] == [posts[-1]["body"]] * len(posts)  # the same facts each time
    if failures:
        assert "enroll: POST attempt 1 failed" in serial_log.read_text(errors="replace"), tail()
    post = posts[-1]
    assert post["path"] == "/api/v1/enroll"
    assert post["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert post["headers"]["Content-Type"] == "application/json"
    facts = json.loads(post["body"])
    _check_facts(facts, case, _leases(leases))


def _check_facts(facts: dict, case: dict, leased: dict[str, str]) -> None:
    assert set(facts) == KEYS, facts
    assert facts["uuid"] == UUID
    for key, value in case["expect"].items():
        assert facts[key] == value, (key, facts)
    assert facts["cpus"] == 2 and facts["cpu_model"]
    assert 350 <= facts["memory_mb"] <= 512, facts["memory_mb"]
    disks = {d["serial"]: d for d in facts["disks"]}
    assert all(set(d) == DISK_KEYS for d in facts["disks"]), facts["disks"]
    assert sorted(disks) == sorted(serial for _, serial, _ in case["disks"]), facts["disks"]
    for _, serial, name in case["disks"]:
        assert disks[serial]["name"] == name and disks[serial]["size_bytes"] == DISK_MB * 2**20, disks
    nics = {n["mac"]: n for n in facts["interfaces"]}
    assert all(set(n) == NIC_KEYS for n in facts["interfaces"]), facts["interfaces"]
    assert sorted(nics) == sorted(mac for _, mac, _ in case["nics"]), facts["interfaces"]
    for _, mac, driver in case["nics"]:
        nic = nics[mac]
        assert (nic["driver"], nic["link"], nic["boot"]) == (driver, True, mac == case["boot_mac"]), nic
        assert nic["ip"] == leased[mac], (nic, leased)
        assert nic["lldp_chassis"] is None and nic["lldp_port"] is None


def _serve(appliance, tmp_path: Path, failures: int) -> tuple[Path, Path]:
    """dnsmasq (DHCP only, on the namespace's eth0) and the stub API; their lease and record files."""
    dnsmasq = require_tool("dnsmasq")
    leases, record = tmp_path / "dnsmasq.leases", tmp_path / "posts.jsonl"
    appliance.popen([dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                     "--interface=eth0", "--bind-interfaces", "--except-interface=lo",
                     "--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,10m",
                     f"--dhcp-leasefile={leases}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
                     "--dhcp-authoritative", "--no-ping", "--user=root", "--log-facility=-",
                     "--log-dhcp"], stderr=(tmp_path / "dnsmasq.log").open("w"))
    stub = Path(__file__).with_name("enroll_stub.py")
    appliance.popen([sys.executable, str(stub), APPLIANCE, str(PORT), str(record), str(failures)],
                    stderr=(tmp_path / "stub.log").open("w"))
    _wait_for(Path(f"{record}.ready").exists, 10, "the stub API did not start")
    _wait_for(lambda: ":67 " in appliance.run(["ss", "-Hlun"]).stdout, 10, "dnsmasq did not start")
    return leases, record


def _qemu(case: dict, image: Path, tmp_path: Path, serial_log: Path, switch) -> list[str]:
    qemu, qemu_img = require_tool("qemu-system-x86_64"), require_tool("qemu-img")
    append = f"console=ttyS0 appliance.url=http://{APPLIANCE}:{PORT} appliance.token={TOKEN}"
    if case["bootif"]:
        append += " BOOTIF=01-" + case["bootif"].replace(":", "-")
    argv = [qemu, "-machine", "pc,accel=tcg", "-m", "512", "-smp", "2", "-nographic",
            "-monitor", "none", "-serial", f"file:{serial_log}", "-no-reboot",
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"), "-append", append]
    for table in case["smbios"]:
        argv += ["-smbios", table]
    for i, (model, serial, _) in enumerate(case["disks"]):
        disk = tmp_path / f"disk{i}.qcow2"
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(disk), f"{DISK_MB}M"], check=True, timeout=30)
        argv += ["-drive", f"file={disk},if=none,id=d{i}"]
        if model == "ide-hd":
            argv += ["-device", "ahci,id=sata"]
            argv += ["-device", f"ide-hd,drive=d{i},bus=sata.0,serial={serial}"]
        else:
            argv += ["-device", f"{model},drive=d{i},serial={serial}"]
    for i, (model, mac, _) in enumerate(case["nics"]):
        switch.add_tap(f"tap{i}", "br0")
        argv += ["-netdev", f"tap,id=n{i},ifname=tap{i},script=no,downscript=no",
                 "-device", f"{model},netdev=n{i},mac={mac}"]
    return argv


def _leases(path: Path) -> dict[str, str]:
    """dnsmasq's lease file: MAC -> address ("expiry mac ip name client-id" lines)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return {fields[1]: fields[2] for fields in (line.split() for line in lines)}


def _wait_for(ready, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)
