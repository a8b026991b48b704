"""Many agents in one process, for bench/fanout.py: `python -m bench._fanout_agents HOST PORT
CONTROLLER PASSWORD` with the agents' JIDs, comma-separated, on the first line of stdin.
Prints "ready" once every agent has a session, then serves until stdin closes (or
SIGTERM), and stops them all."""

import asyncio
import logging
import signal
import sys

from agent.client import Agent
from appliance.tasklets import Engine

LOGINS_AT_ONCE = 50  # logins in flight at a time: a storm of 500 only makes them time out
READY_TIMEOUT = 120.0


async def serve(host: str, port: int, controller: str, password: str, jids: list[str]) -> None:
    engine = Engine.load([])
    agents = [Agent(jid, password, host, port, engine, controllers=[controller], max_jobs=8) for jid in jids]
    for i in range(0, len(agents), LOGINS_AT_ONCE):
        batch = agents[i:i + LOGINS_AT_ONCE]
        for agent in batch:
            agent.start()
        async with asyncio.timeout(READY_TIMEOUT):
            while not all(a.sessions for a in batch):
                await asyncio.sleep(0.05)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(65536) or done.set())
    await done.wait()
    await asyncio.gather(*(a.stop(wait=0.5) for a in agents), return_exceptions=True)


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    host, port, controller, password = sys.argv[1:5]
    jids = [line.strip() for line in sys.stdin.readline().split(",") if line.strip()]
    asyncio.run(serve(host, int(port), controller, password, jids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
