"""jobs.* on a running appliance, over REST and XML-RPC: jobs run, list, cancel; bad calls get 4xx."""

import asyncio
import json
import xmlrpc.client

import httpx
import pytest

from tests.appliance.api.conftest import STATUS_OF_FAULT
from tests.fixtures.xmpp import until

from .running import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def rest(appliance, verb, path, body=None, auth=AUTH, params=None):
    reply = httpx.request(verb, f"{appliance.base}/api/v1{path}", json=body, params=params, headers=auth or {},
                          timeout=10)
    return reply.status_code, reply.json()


def rpc(appliance, auth=True):
    class Transport(xmlrpc.client.Transport):
        def send_headers(self, connection, headers):
            super().send_headers(connection, headers + (list(AUTH.items()) if auth else []))

    return xmlrpc.client.ServerProxy(f"{appliance.base}/RPC2", allow_none=True, transport=Transport())


async def _finished(appliance, guid, timeout=30):
    done = {}

    def check():
        status, body = rest(appliance, "GET", f"/jobs/{guid}")
        done.update(body)
        return status == 200 and body["state"] in ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED")

    await until(check, timeout, step=0.2)
    return done


async def test_a_job_asked_over_rest_runs_on_the_agent(appliance, agent):
    status, job = rest(appliance, "POST", "/jobs", {"agent": appliance.host, "tags": ["ping"], "timeout": 30})
    assert status == 200 and job["state"] == "QUEUED" and job["jid"] == appliance.jid
    done = await _finished(appliance, job["guid"])
    assert done["state"] == "SUCCEEDED" and json.loads(done["result_json"])[0]["value"] == "pong"
    assert done["owner"] == appliance.ctl_jid


async def test_xmlrpc_runs_a_script_and_agrees_with_rest(appliance, agent):
    proxy = rpc(appliance)
    job = await asyncio.to_thread(proxy.jobs.script, appliance.jid, "echo hi; exit 3")
    done = await _finished(appliance, job["guid"])
    over_rpc = await asyncio.to_thread(proxy.jobs.get, job["guid"])
    assert over_rpc == done
    assert (done["state"], done["exit_status"], done["output"], done["error"]) == ("FAILED", 3, "hi\n", "exit status 3")
    listed = await asyncio.to_thread(proxy.jobs.list, "FAILED")
    assert job["guid"] in [j["guid"] for j in listed]


async def test_a_workflow_started_over_rest_commissions_the_machine(appliance, agent, tmp_path):
    (tmp_path / "block/vda").mkdir(parents=True)
    (tmp_path / "block/vda/size").write_text("2048\n")
    (tmp_path / "block/vda/ro").write_text("0\n")
    status, run = rest(appliance, "POST", "/workflows", {"name": "commission", "agent": appliance.jid,
                                                         "params": {"sys": str(tmp_path)}})
    assert status == 200 and run["state"] == "QUEUED"
    done = await _finished(appliance, run["guid"], timeout=60)
    assert done["state"] == "SUCCEEDED", done["log"]
    status, steps = rest(appliance, "GET", "/jobs", params={"workflow": run["guid"]})
    assert sorted(s["step"] or "" for s in steps) == ["", "disk-check", "facts", "inventory", "ready"]
    status, machine = rest(appliance, "GET", "/machines/m-svc")
    assert machine["state"] == "READY"


def test_a_queued_job_is_cancelled_at_once(appliance):
    status, job = rest(appliance, "POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"]})  # nobody online
    status, cancelled = rest(appliance, "POST", f"/jobs/{job['guid']}/cancel")
    assert status == 200 and cancelled["state"] == "CANCELLED"
    status, again = rest(appliance, "POST", f"/jobs/{job['guid']}/cancel")  # nothing more to do
    assert status == 200 and again["state"] == "CANCELLED" and again["revision"] == cancelled["revision"]


BAD = {
    # name: (verb, path, body, auth, status)
    "no credentials": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"]}, None, 401),
    "wrong token": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"]}, {"Authorization": "Bearer x"}, 401),
    "no such agent": ("POST", "/jobs", {"agent": "nobody@rack.test", "tags": ["ping"]}, AUTH, 404),
    "tags and a script": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"], "script": "true"}, AUTH, 400),
    "no tags": ("POST", "/jobs", {"agent": "agent-svc", "tags": []}, AUTH, 400),
    "a blank script": ("POST", "/jobs/script", {"agent": "agent-svc", "script": " \n "}, AUTH, 400),
    "a script XML cannot carry": ("POST", "/jobs/script", {"agent": "agent-svc", "script": "echo \u0001"}, AUTH, 400),
    "a bad tag": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["pi ng"]}, AUTH, 400),
    "a zero timeout": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"], "timeout": 0}, AUTH, 400),
    "params not an object": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"], "params": [1]}, AUTH, 400),
    "unknown argument": ("POST", "/jobs", {"agent": "agent-svc", "tags": ["ping"], "colour": 1}, AUTH, 400),
    "an unknown state": ("GET", "/jobs?state=ASLEEP", None, None, 400),
    "no such job": ("GET", "/jobs/no-such-job", None, None, 404),
    "a malformed id": ("GET", "/jobs/bad%20id!", None, None, 400),
    "cancel no such job": ("POST", "/jobs/no-such-job/cancel", None, AUTH, 404),
    "an unknown workflow": ("POST", "/workflows", {"name": "decommission", "agent": "agent-svc"}, AUTH, 400),
}


@pytest.mark.parametrize("case", BAD, ids=str)
def test_bad_calls_get_4xx_and_change_nothing(appliance, case):
    verb, path, body, auth, expected = BAD[case]
    before = rest(appliance, "GET", "/jobs", params={"limit": 10000})[1]
    status, reply = rest(appliance, verb, path, body, auth)
    assert status == expected and reply["error"]["message"]
    assert rest(appliance, "GET", "/jobs", params={"limit": 10000})[1] == before


RPC_BAD = {
    "no such agent": (lambda p: p.jobs.run("nobody@rack.test", ["ping"]), True, 404),
    "tags and a script": (lambda p: p.jobs.run("agent-svc", ["ping"], "true"), True, 400),
    "no credentials": (lambda p: p.jobs.run("agent-svc", ["ping"]), False, 401),
    "no such job": (lambda p: p.jobs.get("no-such-job"), True, 404),
    "unknown workflow": (lambda p: p.jobs.workflow("decommission", "agent-svc"), True, 400),
}


@pytest.mark.parametrize("case", RPC_BAD, ids=str)
def test_bad_xmlrpc_calls_get_the_same_errors(appliance, case):
    call, auth, expected = RPC_BAD[case]
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(rpc(appliance, auth))
    assert STATUS_OF_FAULT[info.value.faultCode] == expected
