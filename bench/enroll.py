"""Enrollment: one QEMU machine's power-on to enrolled, and a storm of simulated machines.

1. Boot: a BIOS QEMU machine (SeaBIOS + QEMU's iPXE ROM, as `appliance lab up`) on the
   lab's topology — a switch namespace with a bridge, the server in a namespace at
   10.77.0.1 — boots from the appliance (DHCP, TFTP, boot script, enrollment API), then
   from the peer: dnsmasq (DHCP + TFTP only, bound to the namespace's eth0, private lease
   file, `--conf-file=/dev/null`, `--no-ping`, RA and iPXE's no-ProxyDHCP-wait option as
   PXE-NOTES advises) with a static Python HTTP server (bench/_static_boot.py) holding the
   same boot script, kernel and initrd and a stub enrollment endpoint. The time is power-on
   to QEMU exiting: the enrollment image powers the machine off once it is answered.
   Rounds alternate; seconds per round, the means and their ratio are printed.
2. Storm: the appliance alone, bench/_storm.py in a second namespace simulating N machines
   (relayed DHCP, TFTP of undionly.kpxe, the boot script, the enrollment POST).
   Machines/s, failures by stage and where the time went.

`python -m bench enroll` runs both; BENCH_ENROLL=storm or =boot runs one.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from appliance import boot
from appliance.lab import lab, machines
from appliance.lab.netns import Netns

ADDRESS, CLIENT = "10.77.0.1", "10.77.0.2"
RELAY_NET, RELAY = "10.78.0.0/16", "10.78.0.1"
# (machines, [tftp] max_transfers): the default 500, then room for every machine at once
STORMS = ((100, None), (1000, None), (1000, 1000))
STORM_DEADLINE = 120  # seconds a storm may take at most
ROUNDS = 2
BOOT_TIMEOUT = 180
TOKEN = "bench-enroll-token"
ROOT = Path(__file__).parents[1]


def _appliance(ns: Netns, work: Path, relays: bool, max_transfers: int | None = None) -> None:
    """`appliance run` as the lab configures it (plus a relay pool for the storm)."""
    for sub in ("tftp", "http"):
        (work / "state" / sub).mkdir(parents=True, exist_ok=True)
    pool = f'relays = [{{ subnet = "{RELAY_NET}", first = "10.78.1.0", last = "10.78.254.254" }}]\n'
    cfg = lab.CONFIG.format(address=ADDRESS, subnet="10.77.0.0/24", state=work / "state", admin="admin-x",
                            enroll=TOKEN, loader=pool if relays else "")
    if max_transfers:
        cfg = cfg.replace("[tftp]\n", f"[tftp]\nmax_transfers = {max_transfers}\n")
    (work / "appliance.toml").write_text(cfg)
    if not relays:  # a real machine boots the enrollment image (built once, then cached)
        lab._build_image(work / "appliance.toml")
    log = open(work / "appliance.log", "ab")  # noqa: SIM115 - the appliance keeps it
    ns.popen([sys.executable, "-m", "appliance", "run", "-c", str(work / "appliance.toml")],
             stdout=log, stderr=log, cwd=ROOT)
    _wait(lambda: _get(ns, "/api/v1/health") is not None, 30, "the appliance did not come up")


def _get(ns: Netns, path: str):
    out = ns.run(["curl", "-sf", "-m", "5", f"http://{ADDRESS}{path}"], check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _wait(ready, timeout: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(step)


def _segment() -> tuple[Netns, Netns]:
    switch, server = Netns.create("bench"), Netns.create("bench")
    switch.add_bridge("br0")
    switch.add_port("br0", server, "eth0", address=f"{ADDRESS}/24")
    return switch, server


def _close(*spaces: Netns) -> None:
    for ns in spaces:
        ns.close()


# -- the storm ---------------------------------------------------------------------------

def storm(count: int, work: Path, max_transfers: int | None = None) -> dict:
    switch, server = _segment()
    client = Netns.create("bench")
    try:
        switch.add_port("br0", client, "eth0", address=f"{CLIENT}/24")
        client.ip("route", "add", "local", RELAY_NET, "dev", "lo")  # the machines behind the relay
        server.ip("route", "add", RELAY_NET, "via", CLIENT)
        _appliance(server, work, relays=True, max_transfers=max_transfers)
        pid = server.processes[-1].pid
        cpu = _cpu(pid)
        out = client.run([sys.executable, "-m", "bench._storm", ADDRESS, RELAY, str(count), TOKEN,
                          str(STORM_DEADLINE)], timeout=STORM_DEADLINE + 60, cwd=ROOT)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["appliance_cpu"] = _cpu(pid) - cpu
        listed = _get(server, "/api/v1/machines?limit=10000") or []
        result["listed"] = sum(1 for m in listed if (m.get("serial") or "").startswith("STORM-"))
        result["max_transfers"] = max_transfers or 500
        return result
    finally:
        _close(client, server, switch)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_storm(r: dict) -> None:
    rate = r["enrolled"] / r["seconds"] if r["seconds"] else 0.0
    print(f"storm {r['machines']:5} machines, [tftp] max_transfers = {r['max_transfers']}: "
          f"{r['enrolled']} enrolled ({r['listed']} listed by the API) "
          f"in {r['seconds']:.1f} s = {rate:.1f} machines/s; failures {r['failures'] or 'none'}")
    for stage, t in r["stages"].items():
        print(f"    {stage:7} p50 {t['p50']:6.2f} s  p95 {t['p95']:6.2f} s  max {t['max']:6.2f} s")
    print(f"    CPU: appliance {r['appliance_cpu']:.1f} s, load generator {r['generator_cpu']:.1f} s "
          f"(2 cores shared)")
    for error in r["errors"]:
        print(f"    error: {error}")


# -- one QEMU machine ----------------------------------------------------------------------

def boot_appliance(work: Path) -> float:
    switch, server = _segment()
    try:
        _appliance(server, work, relays=False)
        seconds = _power_on(switch, work)
        enrolled = [m for m in _get(server, "/api/v1/machines") or [] if m["serial"] == "LAB-0000"]
        if not enrolled:
            raise RuntimeError(f"the machine powered off without enrolling: see {work}")
        return seconds
    finally:
        _close(server, switch)


def boot_dnsmasq(work: Path, image: Path) -> float:
    switch, server = _segment()
    try:
        docroot, record = _static_root(work, image), work / "enroll.jsonl"
        server.ip("addr", "add", "fd77::1/64", "dev", "eth0", "nodad")
        with open(work / "peer.log", "ab") as log:  # both children keep it
            server.popen(_dnsmasq_command(work, docroot), stdout=log, stderr=log)
            server.popen([sys.executable, "-m", "bench._static_boot", ADDRESS, "80", str(docroot),
                          str(record)], cwd=ROOT, stdout=log, stderr=log)
        _wait(lambda: Path(f"{record}.ready").exists() and ":67 " in server.run(["ss", "-lun"]).stdout,
              20, f"dnsmasq or the static server did not start: see {work / 'peer.log'}")
        seconds = _power_on(switch, work)
        if not record.exists():
            raise RuntimeError(f"the machine powered off without posting its facts: see {work}")
        return seconds
    finally:
        _close(server, switch)  # stops dnsmasq and the HTTP server by their PIDs


def _static_root(work: Path, image: Path) -> Path:
    """What the static HTTP server and dnsmasq's TFTP serve, readable by dnsmasq's user."""
    docroot = work / "www"
    (docroot / "boot").mkdir(parents=True)
    (docroot / "assets").mkdir()
    shutil.copytree(image, docroot / "assets" / "enroll")
    mac = machines.identity(0)["mac"]
    (docroot / "boot" / "ipxe").write_text(boot.ipxe_script(ADDRESS, mac, None, TOKEN))
    (work / "tftp").mkdir()
    shutil.copyfile("/usr/lib/ipxe/undionly.kpxe", work / "tftp" / "undionly.kpxe")
    for path in [work, *work.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return docroot


def _dnsmasq_command(work: Path, docroot: Path) -> list[str]:
    return [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping",
            "--dhcp-range=10.77.0.100,10.77.0.199,1h", f"--dhcp-leasefile={work}/dnsmasq.leases",
            f"--pid-file={work}/dnsmasq.pid", f"--log-facility={work}/dnsmasq.log", "--log-dhcp",
            "--enable-tftp", f"--tftp-root={work}/tftp",
            "--dhcp-match=set:ipxe,175",  # iPXE sends option 175: it gets the script URL
            "--dhcp-boot=tag:!ipxe,undionly.kpxe",
            f"--dhcp-boot=tag:ipxe,http://{ADDRESS}/boot/ipxe?mac=${{net0/mac}}",
            "--dhcp-option=tag:ipxe,encap:175,176,1b",  # no ProxyDHCP wait (PXE-NOTES)
            "--enable-ra", "--dhcp-range=fd77::,ra-only"]  # iPXE's IPv6 router wait (PXE-NOTES)


def _power_on(switch: Netns, work: Path) -> float:
    """Seconds from QEMU's start to its exit (the enrollment image powers it off)."""
    vm = machines.start(switch, 0, "bios", work)
    proc = switch.processes[-1]
    try:
        proc.wait(timeout=BOOT_TIMEOUT)
    except Exception:
        proc.kill()
        raise RuntimeError(f"the machine did not power off in {BOOT_TIMEOUT} s: see {vm['log']}") from None
    return time.time() - vm["started"]


def boots(work: Path) -> None:
    times: dict[str, list[float]] = {"pylabs": [], "dnsmasq": []}
    image = None
    for n in range(ROUNDS):
        for name in times:
            run = work / f"boot-{name}-{n}"
            run.mkdir()
            if name == "pylabs":
                times[name].append(boot_appliance(run))
                image = image or run / "state" / "http" / "enroll"
            else:
                times[name].append(boot_dnsmasq(run, image))
            print(f"boot round {n + 1}: {name:8} power-on to enrolled and off {times[name][-1]:5.1f} s",
                  flush=True)
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    print(f"boot mean: pylabs {mean['pylabs']:.1f} s, dnsmasq + static HTTP {mean['dnsmasq']:.1f} s; "
          f"ratio pylabs/dnsmasq {mean['pylabs'] / mean['dnsmasq']:.2f} (target <= 1.00)")


def main() -> int:
    which = os.environ.get("BENCH_ENROLL", "storm boot").split()
    with tempfile.TemporaryDirectory(prefix="bench-enroll-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # dnsmasq drops root: its TFTP root must be reachable (as nobody)
        if "storm" in which:
            for count, max_transfers in STORMS:
                run = work / f"storm-{count}-{max_transfers}"
                run.mkdir()
                _print_storm(storm(count, run, max_transfers))
        if "boot" in which:
            boots(work)
    return 0
