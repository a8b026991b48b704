"""The http component: boot files over HTTP under /assets/.

In a lab the app server serves [http].root itself, and this component only checks, at
start, that the directory is there. In the node image (`[http] nginx = true`) it runs
nginx in the foreground as its child — config rendered by `appliance.nginx` under
STATE_DIR/nginx — stops it gracefully, and a crash of nginx is a crash of the component
(restarted by the supervisor).
"""

import asyncio
import logging
import shutil
import signal
from pathlib import Path

from appliance import nginx
from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.runner import Component

log = logging.getLogger("appliance.http")
READY_TIMEOUT = 8.0


class Http(Component):
    name = "http"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.proc: asyncio.subprocess.Process | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        root = Path(self.cfg.http.root)
        if not root.is_dir():
            raise FileNotFoundError(f"[http].root {root} is not a directory")
        if self.cfg.http.nginx:
            await self._start_nginx()
        log.info("http.serving", extra=fields(root=root, by="nginx" if self.proc else "appserver"))

    async def _start_nginx(self) -> None:
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
        if binary is None:
            raise FileNotFoundError("nginx is not installed (Debian package nginx-light)")
        workdir = Path(self.cfg.node.state_dir) / "nginx"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "nginx.conf"
        conf.write_text(nginx.main(self.cfg, workdir))
        (workdir / "nginx.pid").unlink(missing_ok=True)
        (workdir / "error.log").write_text("")  # so that a failure reports this start's error
        self.proc = await asyncio.create_subprocess_exec(
            binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        if not await self._listening(workdir / "nginx.pid"):
            await self.stop()
            raise OSError(f"nginx did not start: {self._error_tail(workdir)}")

    async def _listening(self, pid_file: Path) -> bool:
        """nginx writes its pid file once its sockets are bound (it retries a busy port
        for 2.5 s first, so a connect test could reach whoever holds the port)."""
        for _ in range(int(READY_TIMEOUT / 0.05)):
            if self.proc.returncode is not None:
                return False
            if pid_file.exists():
                return True
            await asyncio.sleep(0.05)
        return False

    @staticmethod
    def _error_tail(workdir: Path) -> str:
        log_file = workdir / "error.log"
        lines = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
        first_emergency = next((line for line in lines if "[emerg]" in line), None)
        return first_emergency or (lines[-1] if lines else "no error logged")

    async def serve(self) -> None:
        if self.proc is None:
            await self._stopped.wait()
            return
        code = await self.proc.wait()
        if not self._stopped.is_set():
            workdir = Path(self.cfg.node.state_dir) / "nginx"
            raise RuntimeError(f"nginx exited with status {code}: {self._error_tail(workdir)}")

    async def stop(self) -> None:
        self._stopped.set()
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful: finish the transfers under way
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@register("http")
def build(cfg: Config, runtime: Runtime) -> Http:
    return Http(cfg)
