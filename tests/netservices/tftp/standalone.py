"""`python -m tests.netservices.tftp.standalone ROOT HOST [NAME=JSON ...]`: a TftpServer alone
in a process, for tests that kill it or run it in a namespace. Once serving it prints one
JSON line: {"port": …, "workers": [pids]}. SIGTERM stops it."""

import asyncio
import json
import signal
import sys

from netservices.tftp.config import TftpConfig
from netservices.tftp.files import Directory
from netservices.tftp.server import TftpServer


async def main(root: str, host: str, settings: dict) -> None:
    cfg = TftpConfig(enabled=True, root=root, listen=(host,), **settings)
    server = TftpServer(cfg, Directory(root), port=0)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    serving = asyncio.create_task(server.serve())
    print(json.dumps({"port": server.addresses[0][1], "workers": server.pool.pids}), flush=True)
    await stop.wait()
    await server.stop()
    await serving


if __name__ == "__main__":
    pairs = (arg.split("=", 1) for arg in sys.argv[3:])
    asyncio.run(main(sys.argv[1], sys.argv[2], {k: json.loads(v) for k, v in pairs}))
