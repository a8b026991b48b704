"""Every service through every transport: the same results, the same errors."""

import asyncio

import pytest

from appliance.api.auth import Credentials, Guard
from appliance.api.dispatch import ApiError, Dispatcher
from appliance.components import Runtime
from appliance.components.appserver import services
from appliance.config import validate
from appliance.osis.store import open_store

from .conftest import PASSWORD, TOKEN, USER, basic

TRANSPORTS = ("rest", "xmlrpc", "amf")

READS = {
    "version": ("system.version", {}),
    "all machines": ("machines.list", {}),
    "machines by state": ("machines.list", {"state": "READY"}),
    "machine by mac": ("machines.list", {"mac": "52:54:00:00:01:01"}),
    "machine by mac, upper case": ("machines.list", {"mac": "52:54:00:00:01:02".upper()}),
    "one machine": ("machines.get", {"guid": "m2"}),
    "events of a machine": ("events.list", {"machine": "m1"}),
    "latest events": ("events.list", {"limit": 2}),
}

ERRORS = {
    "no such machine": ("machines.get", {"guid": "nope"}, None, 404),
    "malformed id": ("machines.get", {"guid": "bad id!"}, None, 400),
    "bad state": ("machines.list", {"state": "ASLEEP"}, None, 400),
    "limit out of range": ("events.list", {"limit": 0}, None, 400),
    "write without credentials": ("machines.update", {"guid": "m1", "changes": {"hostname": "x"}}, None, 401),
    "write with a wrong token": ("machines.update", {"guid": "m1", "changes": {"hostname": "x"}}, "Bearer nope", 401),
    "write with a wrong password": ("machines.delete", {"guid": "m1"}, basic(USER, "guess"), 401),
    "read with wrong credentials": ("machines.list", {}, "Bearer nope", 401),
    "unknown field in changes": ("machines.update", {"guid": "m1", "changes": {"colour": "red"}}, f"Bearer {TOKEN}", 400),
    "bad host name": ("machines.update", {"guid": "m1", "changes": {"hostname": "No_Such"}}, f"Bearer {TOKEN}", 400),
    "stale revision": ("machines.update", {"guid": "m1", "changes": {"hostname": "x"}, "revision": 1}, f"Bearer {TOKEN}", 409),
    "delete a missing machine": ("machines.delete", {"guid": "gone"}, f"Bearer {TOKEN}", 404),
}


def in_process_call(tmp_state, name, args, cred=None):
    """The in-process transport: the dispatcher itself, on the same store files."""
    store = open_store(validate({}).osis, tmp_state)
    runtime = Runtime(status=lambda: {}, store=store)
    dispatcher = Dispatcher(services(validate({}), runtime), Guard(True, TOKEN, USER, PASSWORD))
    try:
        return "ok", asyncio.run(dispatcher.call(name, args, cred))
    except ApiError as exc:
        return "error", exc.status
    finally:
        store.close()


@pytest.mark.parametrize("name,args", READS.values(), ids=READS.keys())
def test_reads_agree_on_every_transport(clients, api_state, name, args):
    results = {t: clients[t].call(name, args) for t in TRANSPORTS}
    results["in-process"] = in_process_call(api_state, name, args)
    assert results["rest"][0] == "ok", results["rest"]
    assert all(r == results["rest"] for r in results.values()), results


def test_health_agrees_on_every_transport(clients):
    results = [clients[t].call("system.health", {}) for t in TRANSPORTS]
    assert results[0] == ("ok", {"status": "ok", "components": results[0][1]["components"]})
    assert set(results[0][1]["components"]) == {"osis", "appserver"}
    assert all(r == results[0] for r in results)


def test_read_results_are_what_was_stored(clients):
    status, machine = clients["rest"].call("machines.get", {"guid": "m2"})
    assert machine["hostname"] == "node2" and machine["state"] == "READY"
    assert machine["interfaces"][0]["mac"] == "52:54:00:00:01:02"
    assert machine["disks"][0]["size_bytes"] == 30 << 30 and machine["revision"] > 0
    status, found = clients["rest"].call("machines.list", {"state": "READY"})
    assert [m["guid"] for m in found] == ["m0", "m2"]
    status, events = clients["rest"].call("events.list", {"limit": 2})
    assert [e["guid"] for e in events] == ["e2", "e1"]


@pytest.mark.parametrize("name,args,auth,status", ERRORS.values(), ids=ERRORS.keys())
def test_errors_agree_on_every_transport(clients, api_state, name, args, auth, status):
    results = {t: clients[t].call(name, args, auth) for t in TRANSPORTS}
    cred = {"Bearer nope": Credentials(token="nope"), f"Bearer {TOKEN}": Credentials(token=TOKEN)}.get(
        auth, Credentials(username=USER, password="guess") if auth else None)
    results["in-process"] = in_process_call(api_state, name, args, cred)
    assert results == dict.fromkeys(results, ("error", status))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("auth", [f"Bearer {TOKEN}", basic()], ids=["token", "basic"])
def test_writes_with_credentials(clients, transport, auth):
    client = clients[transport]
    guid = {"rest": "m0", "xmlrpc": "m1", "amf": "m2"}[transport]
    _, before = client.call("machines.get", {"guid": guid})
    status, after = client.call("machines.update", {"guid": guid, "changes": {"tags": {"t": transport}},
                                                    "revision": before["revision"]}, auth)
    assert status == "ok" and after["tags"] == {"t": transport} and after["revision"] > before["revision"]
    assert client.call("machines.get", {"guid": guid}) == ("ok", after)


def test_a_write_refused_changes_nothing(clients):
    _, before = clients["rest"].call("machines.get", {"guid": "m1"})
    for transport in TRANSPORTS:
        clients[transport].call("machines.update", {"guid": "m1", "changes": {"hostname": "evil"}})
        clients[transport].call("machines.delete", {"guid": "m1"}, "Bearer wrong")
    assert clients["rest"].call("machines.get", {"guid": "m1"}) == ("ok", before)


def test_unknown_method(clients):
    for transport in TRANSPORTS:
        assert clients[transport].call("gadgets.list", {}) == ("error", 404)
