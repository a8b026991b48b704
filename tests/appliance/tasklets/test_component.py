"""The tasklets component: the appliance's own agent, on the real ejabberd.

`appliance run` with osis, xmpp (accounts made by ejabberdctl), jobs and tasklets runs a
job sent with `appliance jobs run … --agent agent-appliance`; in-process, the agent takes
jobs only from the controller's JID, runs without [osis] (unregistered), and stops in 5 s.
"""

import asyncio
import json
import logging
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.dispatch import JobError, send_job
from agent.protocol import TaskletJob
from appliance.components import Runtime
from appliance.components.tasklets import AGENT_GUID, build, register_agent
from appliance.config import ConfigError, validate
from appliance.fabric.accounts import agent_jid, agent_password
from appliance.fabric.controller import Controller
from appliance.osis.store import open_store
from tests.fixtures.xmpp import connected, loopback_client, offline, online, stopped, until

CONFIG = """\
[node]
domain = "{domain}"
state_dir = "{state}"
[osis]
enabled = true
[appserver]
enabled = false
[xmpp]
enabled = true
host = "{host}"
port = {port}
user = "{user}"
accounts = "ejabberd"
ctl = {ctl}
[jobs]
enabled = true
retry_delay = 1
[tasklets]
enabled = true
"""


def jobs_cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "jobs", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120)


def test_a_job_for_agent_appliance_runs_on_the_appliance(xmpp_server, tmp_path):
    user = f"ap{secrets.token_hex(3)}"
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG.format(domain=xmpp_server.domain, state=tmp_path, host=xmpp_server.host,
                                    port=xmpp_server.port, user=user, ctl=json.dumps(xmpp_server.ctl_prefix())))
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # the Agent is registered once the component has started
            done = jobs_cli(config, "run", "ping", "--agent", AGENT_GUID, "--wait", "--wait-timeout", "90",
                            "--json")
            if "no agent" not in done.stderr or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.3)
        assert done.returncode == 0, done.stderr
        job = json.loads(done.stdout)
        assert (job["state"], job["jid"]) == ("SUCCEEDED", f"{user}-agent@{xmpp_server.domain}")
        assert "pong" in job["result_json"]
        password = tmp_path / "xmpp-agent-password"
        assert stat.S_IMODE(password.stat().st_mode) == 0o600
        made = json.loads((tmp_path / "xmpp-accounts.json").read_text())["accounts"]
        assert made[AGENT_GUID]["jid"] == job["jid"]  # its account came from the accounts sync
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, log
    errors = [line for line in log.splitlines() if "level=error" in line]
    # only logins refused before the accounts sync made the controller's and the agent's accounts
    assert all('msg="No appropriate login method."' in line for line in errors), log
    assert "stop_timeout" not in log and "component.stopped component=tasklets" in log, log


def test_register_writes_the_agent_only_when_absent_or_changed(tmp_path):
    store = open_store(validate({}).osis, tmp_path)
    try:
        assert register_agent(store, "a-agent@rack.test", "one") is True
        agent = store.get("agent", AGENT_GUID).obj
        agent.status = 1
        store.put(agent)
        assert register_agent(store, "a-agent@rack.test", "one") is False
        assert register_agent(store, "a-agent@rack.test", "two") is True
        agent = store.get("agent", AGENT_GUID).obj
        assert (agent.jid, agent.password, agent.status) == ("a-agent@rack.test", "two", 1)
    finally:
        store.close()


def test_it_needs_xmpp():
    with pytest.raises(ConfigError, match=r"tasklets.enabled: .* needs \[xmpp\] enabled"):
        validate({"tasklets": {"enabled": True}})


@pytest.fixture
async def appliance_agent(xmpp_server, tmp_path, caplog):
    """The tasklets component alone (no osis): its account and the controller's made by hand."""
    user = f"ap{secrets.token_hex(3)}"
    cfg = validate({"node": {"domain": xmpp_server.domain, "state_dir": str(tmp_path)},
                    "xmpp": {"enabled": True, "host": xmpp_server.host, "port": xmpp_server.port, "user": user,
                             "password": "pw"},
                    "tasklets": {"enabled": True}})
    await asyncio.to_thread(xmpp_server.register, user, "pw")
    await asyncio.to_thread(xmpp_server.register, f"{user}-agent", agent_password(cfg))
    comp = build(cfg, Runtime(status=dict))
    with caplog.at_level(logging.INFO, logger="appliance.tasklets"):
        await comp.start()
    said = {r.msg for r in caplog.records}
    serving = asyncio.create_task(comp.serve())
    controller = Controller(f"{user}@{xmpp_server.domain}", "pw", xmpp_server.host, xmpp_server.port,
                            agents=lambda: [agent_jid(cfg)])
    try:
        await connected(controller)
        yield comp, serving, controller, cfg, said
    finally:
        await stopped(controller)
        await comp.stop()
        await asyncio.wait_for(serving, 10)


async def test_only_the_controller_may_send_jobs_and_it_stops_in_5_s(appliance_agent, xmpp_server):
    comp, serving, controller, cfg, said = appliance_agent
    jid = agent_jid(cfg)
    assert "tasklets.not_registered" in said  # no [osis]: it runs all the same
    await until(lambda: jid in controller.online(), 30)
    result = await controller.send_job(jid, TaskletJob("t1", 30, ("ping",)), 40)
    assert result.status == "ok" and "pong" in json.dumps(result.value)

    stranger = await asyncio.to_thread(xmpp_server.register, f"x{secrets.token_hex(3)}", "pw")
    client = loopback_client(stranger, "pw")
    await online(client, xmpp_server)
    try:
        with pytest.raises(JobError) as refused:
            await send_job(client, f"{jid}/agent", TaskletJob("t2", 30, ("ping",)), 20)
    finally:
        await offline(client)
    assert refused.value.condition == "forbidden"
    again = await controller.send_job(jid, TaskletJob("t3", 30, ("ping",)), 40)
    assert again.status == "ok"  # still serving

    await asyncio.wait_for(comp.stop(), 5)
    await asyncio.wait_for(serving, 1)
    await until(lambda: jid not in controller.online(), 15)
