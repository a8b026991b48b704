"""SMB: our server beside Samba's smbd, same client (smbclient), same file, one run.

Measured: one smbclient `get` of a 256 MiB file, and 4 smbclient `get`s of it at once
(aggregate MB/s), guest access, read-only share. Every download is checked against the
file's SHA-256; a failed or wrong one is counted, never timed as a success. Each figure
is the median of `RUNS` runs. Both servers run on 127.0.0.1 with private ports as child
processes, stopped by PID. smbd comes from Debian's `samba` package, fetched with
`apt-get download` and unpacked into a cache directory (nothing installed, no service
started); its libraries are those of `samba-libs`, which smbclient already needs.
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
SIZE = 256 * MIB
RUNS = 3
CLIENT_TIMEOUT = 120  # seconds any one download may take
CACHE = Path(tempfile.gettempdir()) / "pylabs-smb-peer"
SCENARIOS = {"1 client, 256 MiB": 1, "4 clients at once, 256 MiB each": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _smbd() -> str:
    """smbd of Debian's samba package, unpacked (not installed) under CACHE."""
    path = CACHE / "usr" / "sbin" / "smbd"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "samba"], cwd=CACHE, check=True, capture_output=True,
                       timeout=120)
        deb = sorted(glob.glob(str(CACHE / "samba_*.deb")))[-1]
        subprocess.run(["dpkg-deb", "-x", deb, str(CACHE)], check=True, timeout=60)
    return str(path)


def _samba(root: Path, tmp: Path, port: int) -> list[str]:
    state = tmp / "samba"
    dirs = {key: state / key for key in ("lock", "state", "cache", "pid", "private", "ncalrpc", "log")}
    for path in dirs.values():
        path.mkdir(parents=True)
    conf = state / "smb.conf"
    conf.write_text(
        "[global]\ninterfaces = 127.0.0.1\nbind interfaces only = yes\n"
        f"smb ports = {port}\ndisable netbios = yes\nserver role = standalone server\n"
        "map to guest = bad user\nload printers = no\ndisable spoolss = yes\n"
        f"lock directory = {dirs['lock']}\nstate directory = {dirs['state']}\n"
        f"cache directory = {dirs['cache']}\npid directory = {dirs['pid']}\n"
        f"private dir = {dirs['private']}\nncalrpc dir = {dirs['ncalrpc']}\n"
        f"log file = {dirs['log']}/log.%m\n"
        f"[media]\npath = {root}\nread only = yes\nguest ok = yes\n")
    return [_smbd(), "--foreground", "--no-process-group", f"--configfile={conf}"]


def _ours(root: Path, tmp: Path, port: int) -> list[str]:
    config = tmp / "appliance.toml"
    config.write_text(f'[smb]\nenabled = true\nport = {port}\n'
                      f'shares = [{{ name = "media", path = "{root}" }}]\n')
    return [sys.executable, "-m", "appliance", "run", "-c", str(config), "--only", "smb"]


@contextlib.contextmanager
def _running(cmd: list[str], port: int):
    # Its own process group: smbd signals its whole group when it exits.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield proc
    finally:
        stop(proc, grace=10)
        _wait_group_gone(proc.pid)


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """smbd's children leave after their parent: wait (bounded) until its group is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)  # signal 0: only asks whether the group still exists
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _download(port: int, count: int, out: Path) -> tuple[float, list[Path]]:
    targets = [out / f"got.{i}" for i in range(count)]
    seconds, ok = run_all([["smbclient", "-N", "-p", str(port), "//127.0.0.1/media", "-c", f"get big {t}"]
                           for t in targets], CLIENT_TIMEOUT)
    return seconds, [t for t, good in zip(targets, ok, strict=True) if good]


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _measure(port: int, want: str, out: Path) -> dict[str, tuple[float, int]]:
    """Per scenario: (median MB/s, failed downloads over all runs)."""
    results = {}
    for label, count in SCENARIOS.items():
        rates, failed = [], 0
        for _ in range(RUNS):
            seconds, ok = _download(port, count, out)
            good = [t for t in ok if _sha(t) == want]
            failed += count - len(good)
            rates.append(len(good) * SIZE / seconds / 1e6)
            for target in out.iterdir():
                target.unlink()
        results[label] = (statistics.median(rates), failed)
    return results


def main() -> int:
    if not shutil.which("smbclient"):
        print("bench smb: smbclient not found: run `make bench` to install it", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        root, out = tmp / "root", tmp / "out"
        root.mkdir()
        out.mkdir()
        with (root / "big").open("wb") as f:
            for _ in range(SIZE // (16 * MIB)):
                f.write(os.urandom(16 * MIB))
        want = _sha(root / "big")
        for path in (tmp, root):  # smbd's guest is nobody
            path.chmod(0o755)
        (root / "big").chmod(0o644)
        rows = {}
        for server, command in (("pylabs", _ours), ("samba", _samba)):
            port = _free_port()
            with _running(command(root, tmp, port), port):
                rows[server] = _measure(port, want, out)
    _print(rows)
    return 0 if all(f == 0 for row in rows.values() for _, f in row.values()) else 1


def _print(rows: dict) -> None:
    print(f"{'scenario':36}{'pylabs':>10}{'samba':>10}{'ratio':>9}"
          f"   (MB/s, median of {RUNS}; failed downloads)")
    for label in SCENARIOS:
        ours, peer = rows["pylabs"][label][0], rows["samba"][label][0]
        ratio = f"{ours / peer:>8.2f}x" if peer else f"{'-':>9}"
        fails = ", ".join(f"{s} {rows[s][label][1]}" for s in rows)
        print(f"{label:36}{ours:10.1f}{peer:10.1f}{ratio}   failed: {fails}")
