"""Network namespaces for labs and tests: private segments where DHCP may answer broadcasts.

Nothing here touches the machine's own interfaces: every link is created inside a
namespace this module made, and `Netns.close()` stops the processes started in it by
their PIDs before deleting it.

    with Netns.create("lab") as switch:
        switch.add_bridge("br0")
        host = Netns.create("lab")
        switch.add_port("br0", host, "eth0", address="10.0.0.2/24")
"""

import itertools
import os
import signal
import subprocess
import time

_serial = itertools.count(1)


class NetnsError(RuntimeError):
    """An `ip` command failed; the message carries its stderr."""


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


class Netns:
    """One network namespace that this process created and will delete."""

    def __init__(self, name: str):
        self.name = name
        self.processes: list[subprocess.Popen] = []

    @classmethod
    def create(cls, prefix: str = "pyl") -> "Netns":
        """A new namespace named PREFIX-PID-N, loopback up."""
        ns = cls(f"{prefix}-{os.getpid()}-{next(_serial)}")
        _ip("netns", "add", ns.name)
        ns.ip("link", "set", "lo", "up")
        return ns

    def __enter__(self) -> "Netns":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ip(self, *args: str) -> str:
        """Run `ip -n NAME ARGS` and return its output."""
        return _ip("-n", self.name, *args)

    def command(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: list[str], *, check: bool = True, timeout: float = 60,
            **kwargs) -> subprocess.CompletedProcess:
        """Run `cmd` inside the namespace to completion (output captured as text)."""
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.command(cmd), check=check, timeout=timeout, text=True, **kwargs)

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start `cmd` inside the namespace; `close()` stops it by its PID.

        `ip netns exec` execs the command, so the PID is the command's own.
        """
        proc = subprocess.Popen(self.command(cmd), **kwargs)
        self.processes.append(proc)
        return proc

    def add_bridge(self, name: str, address: str | None = None) -> None:
        self.ip("link", "add", name, "type", "bridge")
        self._configure(name, address)

    def add_tap(self, name: str, bridge: str | None = None) -> None:
        """A tap device (for a QEMU NIC), optionally a port of `bridge`."""
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        if bridge:
            self.ip("link", "set", name, "master", bridge)
        self._configure(name, None)

    def add_veth(self, name: str, peer: "Netns", peer_name: str, *, address: str | None = None,
                 peer_address: str | None = None) -> None:
        """A veth pair: `name` here, `peer_name` in namespace `peer`."""
        self.ip("link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", peer.name)
        self._configure(name, address)
        peer._configure(peer_name, peer_address)

    def add_port(self, bridge: str, host: "Netns", host_name: str, *,
                 address: str | None = None) -> str:
        """Plug namespace `host` into `bridge` here through a veth; returns the port name."""
        port = f"p{next(_serial)}"
        self.add_veth(port, host, host_name, peer_address=address)
        self.ip("link", "set", port, "master", bridge)
        return port

    def _configure(self, dev: str, address: str | None) -> None:
        if address:
            self.ip("addr", "add", address, "dev", dev)
        self.ip("link", "set", dev, "up")

    def pids(self) -> list[int]:
        """PIDs of every process running inside the namespace."""
        return [int(p) for p in _ip("netns", "pids", self.name).split()]

    def close(self, grace: float = 3.0) -> None:
        """Stop the processes started here by their PIDs, then delete the namespace."""
        for proc in self.processes:
            _terminate(proc.pid)
        deadline = time.monotonic() + grace
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for pid in self.pids():  # strays, e.g. daemons our commands forked inside
            _terminate(pid, signal.SIGKILL)
        _ip("netns", "delete", self.name)


def alive(pid: int) -> bool:
    """Whether a process with this PID exists and is not a zombie (gone, for our purpose)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _terminate(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
