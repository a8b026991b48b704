"""The commission workflow on a real agent: facts -> inventory -> disk check -> READY."""

import os

import pytest

from appliance.jobs import submit
from appliance.osis.schema import domain
from tests.fixtures.xmpp import until

S, M = domain.JobState, domain.MachineState


def _steps(fabric, run_guid):
    """The run's step jobs by step name, in step order."""
    found = sorted(submit.list_jobs(fabric.store, workflow=run_guid), key=lambda s: s.obj.guid)
    return {s.obj.step: s.obj for s in found if s.obj.guid != run_guid}


def _machine(fabric, jid):
    agent = fabric.store.query("agent", [("jid", "=", jid)])[0].obj
    return fabric.store.get("machine", agent.machine).obj


def _sysfs(root, disks: dict[str, tuple[int, int]]):
    """A fake /sys with block devices NAME: (sectors, ro)."""
    for name, (sectors, ro) in disks.items():
        block = root / "block" / name
        block.mkdir(parents=True)
        (block / "size").write_text(f"{sectors}\n")
        (block / "ro").write_text(f"{ro}\n")
    return root


@pytest.fixture
async def commissioning(fabric):
    [jid] = fabric.make_agents(1, machines=True)
    await fabric.start_controller()
    await fabric.online(fabric.agent(jid))
    await fabric.start_engine()
    return jid


async def test_commission_makes_the_machine_ready(fabric, commissioning, tmp_path):
    jid = commissioning
    sysfs = _sysfs(tmp_path / "sys", {"vda": (2097152, 0), "loop0": (8, 1)})
    run = submit.start_workflow(fabric.store, "commission", jid, {"sys": str(sysfs)})
    assert (run.obj.action, run.obj.workflow) == ("workflow", run.obj.guid)
    await until(lambda: _machine(fabric, jid).state == M.COMMISSIONING, 10)
    job = await fabric.finished(run.obj.guid, timeout=60)
    assert job.state == S.SUCCEEDED, (job.error, job.log)
    steps = _steps(fabric, run.obj.guid)
    assert list(steps) == ["facts", "inventory", "disk-check", "ready"]
    assert all(s.state == S.SUCCEEDED for s in steps.values())
    assert steps["disk-check"].output == "vda: 1073741824 bytes, read-only=0\n"  # loop devices are not disks
    machine = _machine(fabric, jid)
    assert machine.state == M.READY
    assert machine.cpus == os.cpu_count() and [d.name for d in machine.disks] == ["vda"]
    events = fabric.store.query("event", [("machine", "=", machine.guid)])
    assert [e.obj.kind for e in events] == ["machine.commissioned"]


async def test_a_read_only_disk_fails_commissioning_and_the_machine_is_broken(fabric, commissioning, tmp_path):
    jid = commissioning
    sysfs = _sysfs(tmp_path / "sys", {"sda": (2097152, 0), "sdb": (2097152, 1)})
    run = submit.start_workflow(fabric.store, "commission", jid, {"sys": str(sysfs)})
    job = await fabric.finished(run.obj.guid, timeout=60)
    assert job.state == S.FAILED and job.error.startswith("disk-check: failed")
    steps = _steps(fabric, run.obj.guid)
    assert "ready" not in steps and "sdb: read-only" in steps["disk-check"].output
    machine = _machine(fabric, jid)
    assert machine.state == M.BROKEN
    events = fabric.store.query("event", [("machine", "=", machine.guid)])
    assert [e.obj.kind for e in events] == ["machine.commission_failed"]
    assert "disk-check" in events[0].obj.message


async def test_a_condition_that_fails_stops_the_run_before_the_step(fabric, commissioning, tmp_path):
    jid = commissioning
    sysfs = _sysfs(tmp_path / "sys", {"vda": (2048, 0)})
    run = submit.start_workflow(fabric.store, "commission", jid,
                                {"sys": str(sysfs), "min_disk_bytes": 10 << 30})
    job = await fabric.finished(run.obj.guid, timeout=60)
    assert job.state == S.FAILED and job.error == f"disk-check: no disk of at least {10 << 30} bytes"
    assert list(_steps(fabric, run.obj.guid)) == ["facts", "inventory"]  # the check never ran
    assert _machine(fabric, jid).state == M.BROKEN


async def test_a_workflow_survives_an_engine_restart_with_each_step_once(fabric, commissioning, tmp_path):
    jid = commissioning
    sysfs = _sysfs(tmp_path / "sys", {"vda": (2097152, 0)})
    run = submit.start_workflow(fabric.store, "commission", jid, {"sys": str(sysfs)})
    await until(lambda: "facts" in _steps(fabric, run.obj.guid), 20)
    await fabric.stop_engine()
    await fabric.start_engine()
    job = await fabric.finished(run.obj.guid, timeout=60)
    assert job.state == S.SUCCEEDED, job.error
    found = submit.list_jobs(fabric.store, workflow=run.obj.guid)
    assert sorted(s.obj.guid for s in found) == sorted([run.obj.guid] + [f"{run.obj.guid}.s{i}" for i in range(4)])


async def test_cancelling_a_workflow_run_cancels_its_step(fabric, tmp_path):
    """Its agent offline, the run stays at its first step (QUEUED) until cancelled: with
    the agent online the whole run can succeed before the cancel lands (it did once, in CI)."""
    [jid] = fabric.make_agents(1, machines=True)
    await fabric.start_controller()
    await fabric.start_engine()
    sysfs = _sysfs(tmp_path / "sys", {"vda": (2097152, 0)})
    run = submit.start_workflow(fabric.store, "commission", jid, {"sys": str(sysfs)})
    await until(lambda: _machine(fabric, jid).state == M.COMMISSIONING, 10)
    await until(lambda: [s.state for s in _steps(fabric, run.obj.guid).values()] == [S.QUEUED], 10)
    submit.cancel(fabric.store, run.obj.guid)
    job = await fabric.finished(run.obj.guid, timeout=30)
    assert job.state == S.CANCELLED
    assert _machine(fabric, jid).state == M.ENROLLED
    assert all(s.state != S.QUEUED for s in _steps(fabric, run.obj.guid).values())


def test_a_workflow_needs_a_machine_and_a_known_name(store):
    store.put(domain.Agent(guid="agent-x", jid="x@rack.test"))
    with pytest.raises(submit.BadRequest, match="needs a machine"):
        submit.start_workflow(store, "commission", "x@rack.test")
    with pytest.raises(submit.BadRequest, match="no workflow 'decommission'"):
        submit.start_workflow(store, "decommission", "x@rack.test")
    assert not store.scan("job")
