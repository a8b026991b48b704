"""`appliance tasklets list|run` as a user runs them."""

import json
import subprocess
import sys

import pytest

from appliance.tasklets import BUILTIN
from tests.appliance.tasklets.conftest import write


def appliance(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "tasklets", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def site(tmp_path):
    """A config loading the built-ins and a directory with one good and one bad tasklet."""
    folder = tmp_path / "site"
    write(folder, "disk.py", "TAGS = ['disk', 'check']\nPRIORITY = 30\n"
                             "def main(params, ctx):\n    ctx.log('checking', params['disk'])\n"
                             "    return {'disk': params['disk'], 'ok': params.get('ok', True)}\n")
    write(folder, "fails.py", "TAGS = ['check']\nPRIORITY = 40\ndef main(params, ctx):\n    raise OSError('boom')\n")
    write(folder, "broken.py", "TAGS = 'check'\ndef main(params, ctx): pass\n")
    path = tmp_path / "appliance.toml"
    path.write_text(f'[tasklets]\npaths = ["{folder}"]\ntimeout = 5\n')
    return path, folder


def test_list_shows_each_tasklet_and_the_load_errors(site):
    config, folder = site
    result = appliance("list", "-c", str(config))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TAGS", "PRIORITY", "FILE"]
    assert [line.split() for line in lines[1:5]] == [
        ["ping", "ping", "10", str(BUILTIN / "ping.py")],
        ["facts", "facts,inventory", "20", str(BUILTIN / "facts.py")],
        ["disk", "disk,check", "30", str(folder / "disk.py")],
        ["fails", "check", "40", str(folder / "fails.py")],
    ]
    assert lines[-2:] == ["1 file(s) not loaded:",
                          f"  {folder / 'broken.py'}: TAGS 'check' is not a non-empty list of strings"]


def test_list_by_tags_as_json(site):
    config, folder = site
    result = appliance("list", "-c", str(config), "--tags", "check,disk", "--json")
    data = json.loads(result.stdout)
    assert [(t["name"], t["tags"], t["priority"], t["file"]) for t in data["tasklets"]] == [
        ("disk", ["disk", "check"], 30, str(folder / "disk.py"))]
    assert data["errors"] == [{"file": str(folder / "broken.py"),
                               "reason": "TAGS 'check' is not a non-empty list of strings"}]


def test_list_exits_0_without_errors(tmp_path):
    config = tmp_path / "appliance.toml"
    config.write_text("")
    result = appliance("list", "-c", str(config))
    assert result.returncode == 0 and "ping" in result.stdout and "not loaded" not in result.stdout


def test_run_prints_each_result_and_exits_1_when_one_failed(site):
    config, _ = site
    result = appliance("run", "check", "--param", "disk=sda", "-c", str(config))
    assert result.returncode == 1
    assert "disk: ok in " in result.stdout and '"disk": "sda"' in result.stdout
    assert "    checking sda" in result.stdout
    assert "fails: failed in " in result.stdout and "OSError: boom" in result.stdout
    assert "broken.py: TAGS 'check' is not a non-empty list of strings" in result.stderr


def test_run_as_json_with_json_params(site):
    config, _ = site
    result = appliance("run", "disk", "--param", "disk=sdb", "--param", "ok=false", "--json", "-c", str(config))
    assert result.returncode == 0, result.stderr
    [disk] = json.loads(result.stdout)["results"]
    assert (disk["status"], disk["value"], disk["output"]) == ("ok", {"disk": "sdb", "ok": False}, "checking sdb\n")


def test_run_timeout_option(site):
    config, _ = site
    result = appliance("run", "command", "--param", 'command=["sleep", "30"]', "--timeout", "0.5",
                       "--json", "-c", str(config))
    assert result.returncode == 1
    [command] = json.loads(result.stdout)["results"]
    assert (command["status"], command["error"]) == ("timed_out", "killed after 0.5 s")


@pytest.mark.parametrize("args, status, message", [
    (["run", "nosuchtag"], 1, "appliance: no tasklet has the tags nosuchtag"),
    (["run", "ping", "--param", "novalue"], 2, "'novalue' is not KEY=VALUE"),
    (["run", "ping", "--timeout", "0"], 2, "'0' is not a number of seconds above 0"),
])
def test_run_refuses(site, args, status, message):
    result = appliance(*args, "-c", str(site[0]))
    assert result.returncode == status and message in result.stderr
