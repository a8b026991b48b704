"""Agents' XMPP accounts on a real ejabberd and a real prosody: enrolled machines' agents
can log in, deleted ones cannot, a restart catches up, failing commands say why."""

import asyncio
import contextlib
import json
import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from appliance.config import validate
from appliance.fabric.accounts import (
    AccountError,
    Ejabberd,
    Prosody,
    controller_password,
    provisioner,
    run_accounts,
)
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from appliance.services.enroll import Enroll, EnrollSettings, Nic
from appliance.services.machines import Machines
from tests.fixtures.xmpp import loopback_client, offline

TIMEOUT = 30  # seconds for an account change to show at the server
SERVERS = ["xmpp_server", "prosody_server"]  # ejabberd, prosody


@pytest.fixture(params=SERVERS, ids=["ejabberd", "prosody"])
def server(request):
    return request.getfixturevalue(request.param)


def config(server, state_dir, **xmpp):
    kind = "prosody" if "Prosody" in type(server).__name__ else "ejabberd"
    return validate({"node": {"domain": server.domain, "state_dir": str(state_dir)},
                     "xmpp": {"accounts": kind, "ctl": server.ctl_prefix(), **xmpp}})


@pytest.fixture
def store(tmp_path):
    store = open_store(validate({}).osis, tmp_path)
    yield store
    store.close()


@contextlib.asynccontextmanager
async def running(cfg, store):
    """run_accounts as a task, cancelled at the end."""
    task = asyncio.ensure_future(run_accounts(cfg, store, poll=0.2, retry=1.0))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def logs_in(server, jid: str, password: str) -> bool:
    """Whether jid/password opens a session (False: the server refused the credentials)."""
    client = loopback_client(jid, password)
    outcome = asyncio.get_running_loop().create_future()

    def settle(value):
        if not outcome.done():
            outcome.set_result(value)

    client.add_event_handler("session_start", lambda _: settle(True))
    client.add_event_handler("failed_all_auth", lambda _: settle(False))
    client.connect(server.host, server.port)
    try:
        return await asyncio.wait_for(outcome, 15)
    finally:
        await offline(client)


async def until_login(server, jid: str, password: str, expected: bool) -> None:
    deadline = time.monotonic() + TIMEOUT
    while await logs_in(server, jid, password) != expected:
        assert time.monotonic() < deadline, f"{jid}: login still {'refused' if expected else 'accepted'}"
        await asyncio.sleep(0.3)


def enroll(store, server, n: int) -> dict:
    service = Enroll(lambda: store, EnrollSettings(server.domain, "node-{mac6}", "reboot",
                                                   f"{server.host}:{server.port}"))
    nic = Nic(mac=f"52:54:00:aa:00:{n:02x}", ip=f"10.9.0.{n}", boot=True)
    return service.enroll([nic], uuid=f"00000000-0000-4000-8000-{n:012x}")


def ledger(cfg) -> dict:
    """The accounts the appliance remembers having made, by Agent guid."""
    path = Path(cfg.node.state_dir) / "xmpp-accounts.json"
    return json.loads(path.read_text())["accounts"] if path.exists() else {}


async def test_enrolled_agent_logs_in_and_a_deleted_one_no_longer_can(server, store, tmp_path):
    cfg = config(server, tmp_path)
    async with running(cfg, store):
        await until_login(server, f"appliance@{server.domain}", controller_password(cfg), True)
        reply = await asyncio.to_thread(enroll, store, server, 1)
        agent = reply["agent"]
        await until_login(server, agent["jid"], agent["password"], True)
        assert [e["jid"] for e in ledger(cfg).values()] == [agent["jid"]]

        Machines(lambda: store).delete(reply["guid"])
        await until_login(server, agent["jid"], agent["password"], False)
        assert ledger(cfg) == {}


async def test_a_restart_catches_up_with_what_changed_meanwhile(server, store, tmp_path):
    cfg = config(server, tmp_path)
    by_hand = await asyncio.to_thread(server.register, f"byhand{os.getpid()}", "pw")
    async with running(cfg, store):
        first = await asyncio.to_thread(enroll, store, server, 2)
        await until_login(server, first["agent"]["jid"], first["agent"]["password"], True)
    second = await asyncio.to_thread(enroll, store, server, 3)  # while nothing follows the store
    Machines(lambda: store).delete(first["guid"])
    async with running(cfg, store):
        await until_login(server, second["agent"]["jid"], second["agent"]["password"], True)
        await until_login(server, first["agent"]["jid"], first["agent"]["password"], False)
    assert await logs_in(server, by_hand, "pw"), "an account made by hand was removed"


async def test_a_password_changed_in_osis_is_set_on_the_server(server, store, tmp_path):
    cfg = config(server, tmp_path)
    async with running(cfg, store):
        reply = await asyncio.to_thread(enroll, store, server, 4)
        await until_login(server, reply["agent"]["jid"], reply["agent"]["password"], True)
        stored = store.get("agent", f"agent-{reply['guid']}")
        stored.obj.password = '-"odd\\ pässword$(x)'  # a dash first, quotes, escapes, UTF-8
        store.put(stored.obj, expect=stored.revision)
        await until_login(server, reply["agent"]["jid"], stored.obj.password, True)
        assert not await logs_in(server, reply["agent"]["jid"], reply["agent"]["password"])


async def test_one_failing_account_is_logged_and_the_others_are_made(server, store, tmp_path, caplog):
    cfg = config(server, tmp_path)
    store.put(domain.Agent(guid="agent-elsewhere", jid="node@not-served.test", password="pw"))
    async with running(cfg, store):
        reply = await asyncio.to_thread(enroll, store, server, 5)
        await until_login(server, reply["agent"]["jid"], reply["agent"]["password"], True)
    failures = [r for r in caplog.records if r.getMessage() in ("accounts.list_failed", "accounts.ensure_failed")]
    assert failures and "not-served.test" in str(failures[0].fields["error"])
    assert "agent-elsewhere" not in ledger(cfg)


@pytest.mark.parametrize("kind", [Ejabberd, Prosody])
def test_a_command_that_cannot_run_names_itself(kind):
    with pytest.raises(AccountError, match=r"^/nonexistent/ctl .*: cannot run it: No such file"):
        kind(["/nonexistent/ctl"]).users("rack.test")


def test_a_hanging_command_is_killed_at_its_timeout(tmp_path):
    marker = tmp_path / "still-running"
    ctl = Ejabberd(["sh", "-c", f'sleep 2; touch {marker}', "ctl"], timeout=0.5)
    with pytest.raises(AccountError, match=r"no answer within 0.5 s"):
        ctl.users("rack.test")
    time.sleep(2.5)
    assert not marker.exists(), "the command went on running after its timeout"


def test_ejabberd_errors_carry_its_message_and_never_the_password(xmpp_server):
    accounts = Ejabberd(xmpp_server.ctl_prefix())
    with pytest.raises(AccountError) as info:
        accounts.ensure("node", "not-served.test", "s3cret-pw")
    message = str(info.value)
    assert "register node not-served.test '***'" in message and "exited 1" in message
    assert "s3cret-pw" not in message


def test_prosody_errors_carry_its_message_and_never_the_password(prosody_server):
    accounts = Prosody(prosody_server.ctl_prefix())
    with pytest.raises(AccountError) as info:
        accounts.ensure("node", "not-served.test", "s3cret-pw")
    message = str(info.value)
    assert "No such host: not-served.test" in message and "s3cret-pw" not in message


def test_a_server_that_is_not_running_is_reported(prosody_server):
    config = prosody_server.dir / "elsewhere.cfg.lua"  # the same server, its admin socket elsewhere
    config.write_text(prosody_server.config.read_text().replace("prosody.sock", "none.sock"))
    user = pwd.getpwnam("prosody")
    os.chown(config, user.pw_uid, user.pw_gid)  # prosodyctl checks that prosody could read it
    with pytest.raises(AccountError, match="exited 1: .*Unable to connect to server"):
        Prosody([prosody_server.ctl_prefix()[0], "--config", str(config)]).users("rack.test")


def test_controller_password_is_made_once_private_and_kept(tmp_path):
    cfg = validate({"node": {"state_dir": str(tmp_path / "state")}})
    first = controller_password(cfg)
    path = tmp_path / "state" / "xmpp-password"
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert controller_password(cfg) == first
    assert controller_password(validate({"xmpp": {"password": "given"}})) == "given"
    path.write_text("\n")
    with pytest.raises(AccountError, match="is empty"):
        controller_password(cfg)


def test_no_provisioning_unless_configured():
    assert provisioner(validate({})) is None
    assert isinstance(provisioner(validate({"xmpp": {"accounts": "prosody"}})), Prosody)
