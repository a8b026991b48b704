"""`python -m agent` as a user runs it: it comes online, takes jobs, keeps its journal, stops on SIGTERM."""

import asyncio
import json
import secrets
import signal
import subprocess
import sys

import pytest

from agent.protocol import ScriptJob
from appliance.fabric.controller import Controller
from tests.fixtures.xmpp import connected, stopped, until


def _agent(server, jid, ctl_jid, tmp_path, *extra):
    (tmp_path / "pw").write_text("pw\n")
    return subprocess.Popen([sys.executable, "-m", "agent", "--jid", jid, "--password-file", str(tmp_path / "pw"),
                             "--server", f"{server.host}:{server.port}", "--controller", ctl_jid,
                             "--state-dir", str(tmp_path / "state"), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def test_the_agent_command_serves_jobs_and_stops_on_sigterm(xmpp_bulk_server, tmp_path):
    tag = secrets.token_hex(3)
    jid, ctl_jid = xmpp_bulk_server.register_many([f"cmd{tag}", f"cmdctl{tag}"], "pw")
    controller = Controller(ctl_jid, "pw", xmpp_bulk_server.host, xmpp_bulk_server.port, agents=lambda: [jid])
    proc = _agent(xmpp_bulk_server, jid, ctl_jid, tmp_path, "--max-jobs", "2")
    try:
        await connected(controller)
        await until(lambda: jid in controller.online(), 30)
        result = await controller.send_job(jid, ScriptJob("cmd-1", 10, "echo $((6 * 7))"), 15)
        assert (result.status, result.output) == ("ok", "42\n")
        record = json.loads((tmp_path / "state/jobs/cmd-1.json").read_text())
        assert record["result"]["output"] == "42\n"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
        await until(lambda: jid not in controller.online(), 10)
    finally:
        await stopped(controller)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args,message", [
    (["--max-jobs", "0"], "--max-jobs"),
    (["--server", "nohost"], "HOST:PORT"),
])
def test_bad_arguments_exit_2_naming_the_option(tmp_path, args, message):
    (tmp_path / "pw").write_text("pw")
    base = {"--jid": "a@rack.test", "--password-file": str(tmp_path / "pw"), "--server": "127.0.0.1:1",
            "--controller": "c@rack.test"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    done = subprocess.run([sys.executable, "-m", "agent", *[x for kv in base.items() for x in kv]],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and message in done.stderr
