"""TFTP: our server beside tftpd-hpa and atftpd, same client (atftp), same files, one run.

Measured: one 64 MiB download at blksize 1468 without windowsize (lock-step) and with
windowsize 8 (RFC 7440; tftpd-hpa has no windowsize, so it runs lock-step there too),
and 50 concurrent 1 MiB downloads (aggregate MB/s). Every download is checked against
the file's SHA-256; a failed or wrong one is counted, never timed as a success. Each
figure is the median of `RUNS` runs. The servers run on 127.0.0.1 with private ports as
child processes, stopped by PID. tftpd-hpa and atftpd conflict as Debian packages and
each would add a service: their `.deb`s are fetched with `apt-get download` and unpacked
into a cache directory (nothing is installed, no service is started).
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
import time
from pathlib import Path

from bench._clients import run_all, stop

MIB = 1024 * 1024
RUNS = 3
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


def _download(port: int, name: str, options: dict, count: int, out: Path) -> tuple[float, list[Path]]:
    opts = [a for k, v in options.items() for a in ("--option", f"{k} {v}")]
    targets = [out / f"{name}.{i}" for i in range(count)]
    seconds, ok = run_all([["atftp", *opts, "-g", "-r", name, "-l", str(t), "127.0.0.1", str(port)]
                           for t in targets], CLIENT_TIMEOUT)
    return seconds, [t for t, good in zip(targets, ok, strict=True) if good]


def _measure(port: int, files: dict, out: Path) -> dict[str, tuple[float, int]]:
    """Per scenario: (median MB/s, failed downloads over all runs)."""
    results = {}
    for label, (name, options, count) in SCENARIOS.items():
        rates, failed = [], 0
        for _ in range(RUNS):
            seconds, ok = _download(port, name, options, count, out)
            good = [t for t in ok if hashlib.sha256(t.read_bytes()).hexdigest() == files[name][1]]
            failed += count - len(good)
            rates.append(len(good) * files[name][0] / seconds / 1e6)
            for target in out.iterdir():
                target.unlink()
        results[label] = (statistics.median(rates), failed)
    return results


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
        rows = {}
        for server, (cmd, port) in _servers(root, tmp).items():
            with _running(cmd):
                rows[server] = _measure(port, files, out)
    _print(rows)
    return 0 if all(f == 0 for row in rows.values() for _, f in row.values()) else 1


def _print(rows: dict) -> None:
    print(f"{'scenario':44}" + "".join(f"{s:>12}" for s in rows)
          + f"{'vs tftpd-hpa':>14}{'vs atftpd':>11}   (MB/s, median of {RUNS}; failed downloads)")
    for label in SCENARIOS:
        line = f"{label:44}" + "".join(f"{rows[s][label][0]:12.1f}" for s in rows)
        ours = rows["pylabs"][label][0]
        for peer in ("tftpd-hpa", "atftpd"):
            peer_rate = rows[peer][label][0]
            line += f"{ours / peer_rate:>13.2f}x" if peer_rate else f"{'-':>14}"
        fails = ", ".join(f"{s} {rows[s][label][1]}" for s in rows)
        print(line + f"   failed: {fails}")
