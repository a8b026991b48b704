"""A DHCP server running for real (`appliance run --only dhcp`) inside a namespace segment."""

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab.netns import Netns
from netservices.dhcp.leases import read_journal

ROOT = Path(__file__).parents[3]
APPLIANCE = [sys.executable, "-m", "appliance"]
EXCHANGE = [sys.executable, "-m", "tests.netservices.dhcp.exchange"]


@dataclass
class Served:
    """The segment: `server` namespace runs the appliance, `clients` are plain hosts."""

    server: Netns
    clients: list[Netns]
    switch: Netns
    config: Path
    lease_file: Path
    log: Path
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        before = self._started()
        self.process = self.server.popen([*APPLIANCE, "run", "--only", "dhcp", "-c", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), cwd=ROOT)
        deadline = time.monotonic() + timeout
        while self._started() == before:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "dhcp did not start:\n" + self.log.read_text()
            time.sleep(0.1)

    def _started(self) -> int:
        return self.log.read_bytes().count(b"dhcp.listening") if self.log.exists() else 0

    def client(self, index: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the test client (exchange.py) in client namespace `index` to completion."""
        return self.clients[index].run([*EXCHANGE, *args], cwd=ROOT, timeout=timeout)

    def kill(self, sig: int) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=10)

    def leases(self) -> dict:
        return {str(ip): lease for ip, lease in read_journal(self.lease_file).items()}


@pytest.fixture
def dhcp_segment(segment, tmp_path):
    """Factory: `dhcp_segment(clients=1, **dhcp_keys)` -> a started `Served`.

    Server at 10.77.0.1 on eth0, pool 10.77.0.100-10.77.0.199, leases in tmp_path.
    Clients have eth0 up without an address, or 10.77.0.2… with `numbered=True`.
    """

    def make(clients: int = 1, start: bool = True, extra: str = "", numbered: bool = False,
             **keys) -> Served:
        seg = segment(hosts=1 + clients, addressed=range(1 + clients) if numbered else [0])
        settings = {"enabled": True, "interface": "eth0", "subnet": "10.77.0.0/24",
                    "range": ["10.77.0.100", "10.77.0.199"], "router": "10.77.0.1",
                    "dns_servers": ["10.77.0.1"], "lease_file": str(tmp_path / "dhcp.leases"), **keys}
        lines = [f"{k} = {_toml(v)}" for k, v in settings.items()]
        config = tmp_path / "appliance.toml"
        config.write_text(textwrap.dedent(f"""\
            [node]
            domain = "rack.test"
            state_dir = "{tmp_path}"
            log_level = "debug"
            [dhcp]
            """) + "\n".join(lines) + "\n" + extra)
        served = Served(seg.hosts[0], seg.hosts[1:], seg.switch, config, tmp_path / "dhcp.leases", tmp_path / "dhcp.log")
        if start:
            served.start()
        return served

    return make


def _toml(value) -> str:
    import tomli_w
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()
