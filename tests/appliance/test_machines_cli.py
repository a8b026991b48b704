"""`appliance machines list|show|delete` as an operator runs them, on a real store."""

import json
import subprocess
import sys

import pytest

from appliance.config import validate
from appliance.osis.schema import domain
from appliance.osis.store import NotFound, open_store

READY = domain.MachineState._NAMES_TO_VALUES["READY"]
ENROLLED = domain.MachineState._NAMES_TO_VALUES["ENROLLED"]


@pytest.fixture
def seeded(tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text(f'[node]\nstate_dir = "{tmp_path}"\n')
    store = open_store(validate({}).osis, tmp_path)
    for i, state in enumerate([READY, ENROLLED]):
        guid = f"m{i}"
        nics = [domain.NetworkInterface(mac=f"52:54:00:00:00:0{i}", boot=True)]
        disks = [domain.Disk(name="sda", serial=f"DISK{i}", size_bytes=10 << 30)]
        store.put(domain.Machine(guid=guid, hostname=f"node{i}", ip=f"10.77.0.10{i}", state=state,
                                 serial=f"SER{i}", cpus=2, memory_mb=1024, interfaces=nics, disks=disks))
        store.put(domain.DnsRecord(guid=f"{guid}-a", name=f"node{i}.rack.internal", rtype="A",
                                   value=f"10.77.0.10{i}", machine=guid))
        store.put(domain.Agent(guid=f"agent-{guid}", jid=f"node{i}@rack.internal", machine=guid))
    store.close()
    return tmp_path


def machines(state_dir, *args):
    return subprocess.run([sys.executable, "-m", "appliance", "machines", *args,
                           "-c", str(state_dir / "appliance.toml")],
                          capture_output=True, text=True, timeout=60)


def test_list_is_a_table_by_host_name(seeded):
    result = machines(seeded, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["hostname", "ip", "state"]
    assert lines[1].split()[:6] == ["node0", "10.77.0.100", "READY", "SER0", "52:54:00:00:00:00", "sda:DISK0"]
    assert lines[2].split()[:3] == ["node1", "10.77.0.101", "ENROLLED"]
    assert lines[-1] == "2 machine(s)"


def test_list_filtered_by_state_as_json(seeded):
    result = machines(seeded, "list", "--state", "enrolled", "--json")
    assert [m["hostname"] for m in json.loads(result.stdout)] == ["node1"]


def test_list_refuses_an_unknown_state(seeded):
    result = machines(seeded, "list", "--state", "sleepy")
    assert result.returncode == 2 and "invalid choice: 'SLEEPY'" in result.stderr


@pytest.mark.parametrize("name", ["node1", "m1", "52:54:00:00:00:01", "52-54-00-00-00-01", "10.77.0.101"])
def test_show_finds_a_machine_by_any_of_its_names(seeded, name):
    result = machines(seeded, "show", name, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["guid"] == "m1" and data["disks"][0]["serial"] == "DISK1"


def test_show_of_an_unknown_machine_says_so(seeded):
    result = machines(seeded, "show", "node9")
    assert result.returncode == 1 and "no machine 'node9'" in result.stderr


def test_delete_asks_for_yes_then_removes_the_machine_its_records_and_agent(seeded):
    dry = machines(seeded, "delete", "node0")
    assert dry.returncode == 1 and "add --yes" in dry.stdout
    assert machines(seeded, "show", "node0").returncode == 0
    done = machines(seeded, "delete", "node0", "--yes")
    assert done.returncode == 0 and "deleted node0 (m0)" in done.stdout
    store = open_store(validate({}).osis, seeded)
    try:
        for otype, key in (("machine", "m0"), ("dnsrecord", "m0-a"), ("agent", "agent-m0")):
            with pytest.raises(NotFound):
                store.get(otype, key)
        assert store.get("machine", "m1").obj.hostname == "node1"
    finally:
        store.close()
    assert [line.split()[0] for line in machines(seeded, "list").stdout.splitlines()[1:-1]] == ["node1"]
