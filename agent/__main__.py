"""`python -m agent`: run the agent until SIGTERM or SIGINT.

    python -m agent --jid node1@rack.test --password-file /etc/pylabs/agent.pw \\
        --server xmpp.rack.test:5222 --controller appliance@rack.test [--tasklets DIR ...] \\
        [--state-dir /var/lib/pylabs-agent] [--max-jobs 4] [--keepalive 60]

Plaintext is used only for a loopback server unless `--plaintext` (labs only) is given.
With `--state-dir`, the journal of recent jobs (agent.journal) survives a restart of the
agent, so that a job sent again is never run twice.
"""

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from agent.client import KEEPALIVE, MAX_JOBS, Agent
from agent.journal import Journal


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agent", description="The PyLabs XMPP agent.")
    p.add_argument("--jid", required=True, help="this agent's JID (resource 'agent' if none)")
    p.add_argument("--password-file", required=True, type=Path, help="file holding the password")
    p.add_argument("--server", required=True, help="HOST:PORT of the XMPP server")
    p.add_argument("--tasklets", nargs="*", default=[], type=Path, help="tasklet directories")
    p.add_argument("--controller", action="append", required=True,
                   help="bare JID allowed to send jobs, e.g. the appliance's (repeatable; at least one)")
    p.add_argument("--plaintext", action="store_true", default=None,
                   help="allow plaintext to a non-loopback server (labs only)")
    p.add_argument("--state-dir", type=Path,
                   help="where the journal of recent jobs is kept (default: in memory only)")
    p.add_argument("--max-jobs", type=_positive_int, default=MAX_JOBS,
                   help=f"jobs run at once; more are refused with resource-constraint (default {MAX_JOBS})")
    p.add_argument("--keepalive", type=float, default=KEEPALIVE,
                   help=f"seconds between pings to the server (default {KEEPALIVE:g})")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    host, sep, port = args.server.rpartition(":")
    if not sep or not port.isdigit():
        p.error(f"--server: {args.server!r} is not HOST:PORT")
    args.host, args.port = host.strip("[]"), int(port)
    return args


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


async def serve(args: argparse.Namespace) -> None:
    from appliance.tasklets import Engine  # the engine ships with the agent

    engine = Engine.load(list(args.tasklets))
    for error in engine.errors:
        logging.warning("tasklet not loaded: %s", error)
    password = args.password_file.read_text().strip()
    agent = Agent(args.jid, password, args.host, args.port, engine, node={},
                  controllers=args.controller, plaintext=args.plaintext, max_jobs=args.max_jobs,
                  journal=Journal(args.state_dir / "jobs" if args.state_dir else None),
                  keepalive=args.keepalive)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent.start()
    await stop.wait()
    await agent.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
