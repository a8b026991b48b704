"""TFTP: our server beside tftpd-hpa and atftpd, same client (atftp), same files, one run.

Measured: one 64 MiB download at blksize 1468 without windowsize (lock-step) and with
windowsize 8 (RFC 7440; tftpd-hpa has no windowsize, so it runs lock-step there too),
and 50 concurrent 1 MiB downloads (aggregate MB/s). Every server gets the same client
(atftp), the same options and the same files; ours runs as `appliance run --only tftp`
with its defaults (one worker process per core). Every download is checked against
the file's SHA-256; a failed or wrong one is counted, never timed as a success. The
three servers run side by side on 127.0.0.1 (private ports, child processes stopped by
PID) and the runs are interleaved — run 1 of each server, then run 2 of each, …, each
round starting with another server — so that a slow moment of a shared machine falls on
all of them alike. Each MB/s figure is the median of `RUNS` runs, and every run is
printed. A ratio is the median of the run-by-run ratios (ours in run i over the peer in
run i, measured back to back): on a machine whose speed drifts by ±20 % between rounds
(this one does), that compares like with like, where the ratio of two medians compares
different moments; the ratio of the medians is printed too. tftpd-hpa and atftpd
conflict as Debian packages and each would add a service: their `.deb`s are fetched with
`apt-get download` and unpacked into a cache directory (nothing is installed, no service
is started).
"""

import contextlib
import glob
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._clients import stop

MIB = 1024 * 1024
RUNS = 7
CONCURRENT = 50
CLIENT_TIMEOUT = 120  # seconds any one download may take
CACHE = Path(tempfile.gettempdir()) / "pylabs-tftp-peers"
SCENARIOS = {
    "64 MiB, blksize 1468": ("big", {"blksize": 1468}, 1),
    "64 MiB, blksize 1468, windowsize 8": ("big", {"blksize": 1468, "windowsize": 8}, 1),
    f"{CONCURRENT} x 1 MiB at once, blksize 1468": ("small", {"blksize": 1468}, CONCURRENT),
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unpacked(package: str, binary: str) -> str:
    """`binary` of Debian `package`, unpacked (not installed) under CACHE: installing
    tftpd-hpa and atftpd would conflict, and both would add a service listening on
    every interface."""
    path = CACHE / package / binary.lstrip("/")
    if not path.exists():
        (CACHE / package).mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=CACHE / package, check=True,
                       capture_output=True, timeout=120)
        deb = sorted(glob.glob(str(CACHE / package / f"{package}_*.deb")))[-1]
        subprocess.run(["dpkg-deb", "-x", deb, str(CACHE / package)], check=True, timeout=60)
    return str(path)


def _servers(root: Path, tmp: Path) -> dict[str, list[str]]:
    ours = tmp / "appliance.toml"
    port = _free_port()
    ours.write_text(f'[tftp]\nenabled = true\nlisten = ["127.0.0.1"]\nport = {port}\n'
                    f'root = "{root}"\nmax_blksize = 65464\n')
    ports = {"pylabs": port, "tftpd-hpa": _free_port(), "atftpd": _free_port()}
    return {
        "pylabs": ([sys.executable, "-m", "appliance", "run", "-c", str(ours), "--only", "tftp"],
                   ports["pylabs"]),
        "tftpd-hpa": ([_unpacked("tftpd-hpa", "/usr/sbin/in.tftpd"), "--foreground",
                       "--address", f"127.0.0.1:{ports['tftpd-hpa']}", "--secure", str(root)],
                      ports["tftpd-hpa"]),
        "atftpd": ([_unpacked("atftpd", "/usr/sbin/atftpd"), "--daemon", "--no-fork",
                    "--bind-address", "127.0.0.1", "--port", str(ports["atftpd"]),
                    "--logfile", "/dev/null", str(root)], ports["atftpd"]),
    }


@contextlib.contextmanager
def _running(cmd: list[str]):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
        yield proc
    finally:
        stop(proc)


def _run_all(commands: list[list[str]], timeout: float) -> tuple[float, list[bool]]:
    """Start every command at once; (seconds until the last one ended, which exited 0).

    A blocking wait, not `Popen.wait(timeout)`, which polls in steps of up to 50 ms —
    too coarse for a download of a few tenths of a second; a timer kills stragglers.
    """
    began = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for cmd in commands]
    timer = threading.Timer(timeout, lambda: [p.kill() for p in procs if p.poll() is None])
    timer.start()
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        timer.cancel()
    return time.perf_counter() - began, [code == 0 for code in codes]


def _download(port: int, name: str, options: dict, count: int, out: Path) -> tuple[float, list[Path]]:
    opts = [a for k, v in options.items() for a in ("--option", f"{k} {v}")]
    targets = [out / f"{name}.{i}" for i in range(count)]
    seconds, ok = _run_all([["atftp", *opts, "-g", "-r", name, "-l", str(t), "127.0.0.1", str(port)]
                           for t in targets], CLIENT_TIMEOUT)
    return seconds, [t for t, good in zip(targets, ok, strict=True) if good]


def _once(port: int, scenario: str, files: dict, out: Path) -> tuple[float, int]:
    """One run of `scenario`: (MB/s of the good downloads, failed downloads)."""
    name, options, count = SCENARIOS[scenario]
    seconds, ok = _download(port, name, options, count, out)
    good = [t for t in ok if hashlib.sha256(t.read_bytes()).hexdigest() == files[name][1]]
    for target in out.iterdir():
        target.unlink()
    return len(good) * files[name][0] / seconds / 1e6, count - len(good)


def _measure(ports: dict[str, int], files: dict, out: Path) -> dict:
    """Per server and scenario: ([MB/s of each run], failed downloads over all runs)."""
    rows = {server: {label: ([], 0) for label in SCENARIOS} for server in ports}
    servers = list(ports)
    for run in range(RUNS):
        order = servers[run % len(servers):] + servers[:run % len(servers)]
        for label in SCENARIOS:
            for server in order:
                rate, failed = _once(ports[server], label, files, out)
                rates, failures = rows[server][label]
                rows[server][label] = (rates + [rate], failures + failed)
    return rows


def main() -> int:
    for tool in ("atftp",):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin"):
            print(f"bench tftp: {tool} not found: run `make bench` to install it", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        root, out = tmp / "root", tmp / "out"
        root.mkdir()
        out.mkdir()
        files = {}
        for name, size in (("big", 64 * MIB), ("small", MIB)):
            data = os.urandom(size)
            (root / name).write_bytes(data)
            files[name] = (size, hashlib.sha256(data).hexdigest())
        for path in (tmp, root, *root.iterdir()):  # tftpd-hpa and atftpd run as nobody
            path.chmod(0o755)
        servers = _servers(root, tmp)
        with contextlib.ExitStack() as running:
            for cmd, _ in servers.values():
                running.enter_context(_running(cmd))
            rows = _measure({name: port for name, (_, port) in servers.items()}, files, out)
    _print(rows)
    return 0 if all(f == 0 for row in rows.values() for _, f in row.values()) else 1



def _print(rows: dict) -> None:
    print(f"{'scenario':44}" + "".join(f"{s:>12}" for s in rows)
          + f"{'vs tftpd-hpa':>14}{'vs atftpd':>11}   (MB/s, median of {RUNS}; ratio: median of"
          f" the {RUNS} run-by-run ratios; failed downloads)")
    of_medians = []
    for label in SCENARIOS:
        median = {s: statistics.median(rows[s][label][0]) for s in rows}
        line = f"{label:44}" + "".join(f"{median[s]:12.1f}" for s in rows)
        for peer in ("tftpd-hpa", "atftpd"):
            pairs = [ours / theirs for ours, theirs in zip(rows["pylabs"][label][0], rows[peer][label][0],
                                                           strict=True) if theirs]
            line += f"{statistics.median(pairs):>13.2f}x" if pairs else f"{'-':>14}"
            if median[peer]:
                of_medians.append(f"{label} vs {peer} {median['pylabs'] / median[peer]:.2f}x")
        fails = ", ".join(f"{s} {rows[s][label][1]}" for s in rows)
        print(line + f"   failed: {fails}")
    print("ratio of the medians: " + "; ".join(of_medians))
    print("each run (MB/s):")
    for label in SCENARIOS:
        print(f"  {label}: " + "; ".join(
            f"{s} " + " ".join(f"{r:.1f}" for r in rows[s][label][0]) for s in rows))
