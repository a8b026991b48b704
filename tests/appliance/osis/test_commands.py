"""`appliance osis get|list|reindex` as a user runs them."""

import json
import subprocess
import sys

import pytest

from appliance.config import validate
from appliance.osis.schema import domain
from appliance.osis.store import open_store


@pytest.fixture
def seeded(tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text(f'[node]\nstate_dir = "{tmp_path}"\n')
    store = open_store(validate({}).osis, tmp_path)
    for i, state in enumerate(["READY", "READY", "NEW"]):
        nics = [domain.NetworkInterface(mac=f"52:54:00:00:00:0{i}")]
        store.put(domain.Machine(guid=f"m{i}", hostname=f"node{i}", interfaces=nics,
                                 state=domain.MachineState._NAMES_TO_VALUES[state]))
    store.close()
    return path


def osis(*args):
    return subprocess.run([sys.executable, "-m", "appliance", "osis", *args], capture_output=True,
                          text=True, timeout=60)


def test_get_as_json(seeded):
    result = osis("get", "machine", "m1", "-c", str(seeded), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["hostname"] == "node1" and data["state"] == "READY" and data["_revision"] == 2
    assert data["interfaces"][0]["mac"] == "52:54:00:00:00:01"


def test_get_as_text(seeded):
    result = osis("get", "machine", "m2", "-c", str(seeded))
    assert 'hostname: "node2"' in result.stdout and 'state: "NEW"' in result.stdout


def test_list_with_filters_as_json(seeded):
    result = osis("list", "machine", "--where", "state=READY", "--order-by", "hostname", "--desc",
                  "-c", str(seeded), "--json")
    assert [m["guid"] for m in json.loads(result.stdout)] == ["m1", "m0"]


def test_list_by_mac_as_a_table(seeded):
    result = osis("list", "machine", "--where", "mac=52:54:00:00:00:02", "-c", str(seeded))
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["guid", "hostname"] and lines[1].split()[:2] == ["m2", "node2"]
    assert len(lines) == 2


@pytest.mark.parametrize("args,code,message", [
    (["get", "machine", "nope"], 1, "appliance: no machine nope"),
    (["get", "gadget", "x"], 2, "appliance: unknown type 'gadget'"),
    (["get", "machine", "a/b"], 2, "malformed id 'a/b'"),
    (["list", "machine", "--where", "colour=red"], 2, "machine has no column 'colour'"),
    (["list", "machine", "--where", "nonsense"], 2, "'nonsense' is not COLUMN=VALUE"),
])
def test_bad_requests(seeded, args, code, message):
    result = osis(*args, "-c", str(seeded))
    assert result.returncode == code and message in result.stderr


def test_reindex_and_a_corrupt_object(seeded, tmp_path):
    store = open_store(validate({}).osis, tmp_path)
    entry = store.kv.get(b"osis/machine/m0")
    store.kv.put(entry.key, entry.value[:10])
    store.close()
    result = osis("reindex", "-c", str(seeded))
    assert result.returncode == 1 and "machine: 2," in result.stdout
    assert "appliance: osis/machine/m0: corrupt stored value" in result.stderr
    listed = osis("list", "machine", "-c", str(seeded))
    assert listed.returncode == 1
    assert "osis/machine/m0: corrupt stored value" in listed.stderr
    assert "m1" in listed.stdout and "m0" not in listed.stdout
    assert osis("get", "machine", "m0", "-c", str(seeded)).returncode == 1
