"""`appliance jobs …` against a running appliance: run, wait, list, show, cancel, bad requests."""

import asyncio
import json

import pytest


async def cli(appliance, *args):
    return await asyncio.to_thread(appliance.cli, *args)


async def test_run_and_wait_prints_the_result_and_exits_0(appliance, agent):
    done = await cli(appliance, "run", "ping", "--agent", appliance.host, "--wait", "--wait-timeout", "60")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert "SUCCEEDED" in first and f"on {appliance.jid}" in first and '"pong"' in done.stdout


async def test_a_failing_script_exits_1_with_its_exit_status(appliance, agent):
    done = await cli(appliance, "script", "echo oops; exit 3", "--agent", appliance.jid, "--wait", "--json")
    job = json.loads(done.stdout)
    assert done.returncode == 1 and (job["state"], job["exit_status"], job["output"]) == ("FAILED", 3, "oops\n")


async def test_list_show_and_cancel(appliance):
    queued = await cli(appliance, "run", "facts", "--agent", "agent-svc", "--param", "sys=/nonexistent", "--json")
    job = json.loads(queued.stdout)  # the agent is offline: it waits
    assert queued.returncode == 0 and job["state"] == "QUEUED" and json.loads(job["params_json"]) == {
        "sys": "/nonexistent"}
    listing = await cli(appliance, "list", "--state", "queued")
    assert job["guid"] in listing.stdout and "tasklet facts" in listing.stdout
    cancelled = await cli(appliance, "cancel", job["guid"])
    assert cancelled.returncode == 0 and "CANCELLED" in cancelled.stdout
    shown = await cli(appliance, "show", job["guid"])
    assert "error: cancelled" in shown.stdout and "cancelled before it was sent" in shown.stdout


BAD = {
    "no such agent": (["run", "ping", "--agent", "nobody"], 1, "no agent 'nobody'"),
    "a tag the agent would refuse": (["run", "pi ng!", "--agent", "agent-svc"], 2, "tags"),
    "an empty script": (["script", "  ", "--agent", "agent-svc"], 2, "the script is empty"),
    "no such job": (["show", "no-such-job"], 1, "no job no-such-job"),
    "an unknown state": (["list", "--state", "asleep"], 2, "invalid choice"),
    "no agent named": (["run", "ping"], 2, "--agent"),
}


@pytest.mark.parametrize("case", BAD, ids=str)
async def test_bad_requests_exit_non_zero_naming_the_problem_and_queue_nothing(appliance, case):
    args, status, message = BAD[case]
    before = (await cli(appliance, "list", "--json", "--limit", "10000")).stdout
    done = await cli(appliance, *args)
    assert (done.returncode, message in done.stderr) == (status, True), done.stderr
    assert (await cli(appliance, "list", "--json", "--limit", "10000")).stdout == before
