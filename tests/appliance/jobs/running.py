"""`appliance run` with osis, the app server, xmpp and jobs, on the test ejabberd, for the
jobs service and CLI tests; one agent (with its machine) is known to it."""

import contextlib
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

from agent.client import Agent
from appliance.config import validate
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from tests.fixtures.servers import free_port, wait_for

from .conftest import PASSWORD

TOKEN = "jobs-t0ken"
CONFIG = """\
[node]
domain = "{domain}"
state_dir = "{state}"
[osis]
enabled = true
[appserver]
port = {port}
token = "{token}"
[xmpp]
enabled = true
host = "{host}"
port = {xmpp_port}
user = "{user}"
password = "{password}"
[jobs]
enabled = true
retry_delay = 1
"""


class RunningAppliance:
    """The appliance in a subprocess, stopped by its PID; `agent()` makes its agent's client."""

    def __init__(self, server, state: Path):
        self.server, self.state = server, state
        tag = secrets.token_hex(3)
        self.port, self.user, self.host = free_port(), f"svc{tag}", f"svcnode{tag}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.ctl_jid, self.jid = server.register_many([self.user, self.host], PASSWORD)
        self.config = state / "appliance.toml"
        self.config.write_text(CONFIG.format(domain=server.domain, state=state, port=self.port, token=TOKEN,
                                             host=server.host, xmpp_port=server.port, user=self.user,
                                             password=PASSWORD))
        store = open_store(validate({}).osis, state)
        store.put(domain.Machine(guid="m-svc", hostname=self.host, state=domain.MachineState.ENROLLED))
        store.put(domain.Agent(guid="agent-svc", jid=self.jid, machine="m-svc"))
        store.close()
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert wait_for(self._up, 30, proc=self.proc), "appliance did not come up"

    def _up(self) -> bool:
        with contextlib.suppress(OSError):
            return urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=1).status == 200
        return False

    def agent(self, tasklets) -> Agent:
        return Agent(self.jid, PASSWORD, self.server.host, self.server.port, tasklets, controllers=[self.ctl_jid],
                     progress_interval=0.2)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`appliance jobs ARGS -c CONFIG`."""
        return subprocess.run([sys.executable, "-m", "appliance", "jobs", *args, "-c", str(self.config)],
                              capture_output=True, text=True, timeout=timeout)

    def stop(self) -> str:
        """Stop it; what it logged."""
        self.proc.terminate()
        return self.proc.communicate(timeout=15)[1]
