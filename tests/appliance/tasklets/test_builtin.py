"""The built-in tasklets: ping, facts (this machine's, and a fake /sys and /proc) and command."""

import os
import socket
from pathlib import Path

import pytest

from appliance.tasklets import Engine


@pytest.fixture(scope="module")
def builtins():
    return Engine.load([], timeout=10)


def run_one(engine, tag, params=None, **kwargs):
    [result] = engine.execute([tag], params, **kwargs)
    return result


def test_ping_answers_pong(builtins):
    result = run_one(builtins, "ping")
    assert (result.status, result.value) == ("ok", "pong")


def test_facts_describe_this_machine(builtins):
    result = run_one(builtins, "facts")
    assert result.status == "ok", result.error
    facts = result.value
    assert facts["cpus"] == os.cpu_count()
    assert facts["memory_mb"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    assert facts["hostname"] == socket.gethostname()
    nics = sorted(p.name for p in Path("/sys/class/net").iterdir() if (p / "device").exists())
    assert [n["name"] for n in facts["interfaces"]] == nics
    assert all(n["mac"] == Path(f"/sys/class/net/{n['name']}/address").read_text().strip()
               for n in facts["interfaces"])
    assert set(facts) >= {"uuid", "serial", "vendor", "product", "cpu_model", "disks"}


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_facts_read_the_same_places_as_the_enrollment_image(builtins, tmp_path):
    _tree(tmp_path, {
        "proc/cpuinfo": "processor\t: 0\nmodel name\t: Test CPU @ 2GHz\n\nprocessor\t: 1\nmodel name\t: Test CPU @ 2GHz\n",
        "proc/meminfo": "MemTotal:        2097152 kB\nMemFree: 1 kB\n",
        "sys/class/dmi/id/product_uuid": "4c4c4544-0000-1111-2222-333344445555\n",
        "sys/class/dmi/id/product_serial": "SER-1 \n",
        "sys/class/dmi/id/sys_vendor": "Acme\n",
        "sys/class/dmi/id/product_name": "R1\n",
        "sys/block/sda/size": "2048\n",
        "sys/block/sda/device/serial": "DISK-1\n",
        "sys/block/sda/device/model": "FastDisk\n",
        "sys/block/sda/queue/rotational": "0\n",
        "sys/block/loop0/size": "8\n",
        "sys/class/net/eth0/address": "52:54:00:12:34:56\n",
        "sys/class/net/eth0/carrier": "1\n",
        "sys/class/net/eth0/device/vendor": "0x1af4\n",
        "sys/class/net/lo/address": "00:00:00:00:00:00\n",
    })
    result = run_one(builtins, "facts", {"sys": str(tmp_path / "sys"), "proc": str(tmp_path / "proc")})
    facts = result.value
    del facts["hostname"]
    assert facts == {
        "uuid": "4c4c4544-0000-1111-2222-333344445555", "serial": "SER-1", "vendor": "Acme", "product": "R1",
        "board_serial": None, "chassis_serial": None, "cpus": 2, "cpu_model": "Test CPU @ 2GHz", "memory_mb": 2048,
        "disks": [{"name": "sda", "size_bytes": 2048 * 512, "serial": "DISK-1", "model": "FastDisk",
                   "rotational": False}],
        "interfaces": [{"mac": "52:54:00:12:34:56", "name": "eth0", "driver": None, "link": True}],
    }


COMMANDS = {
    "a list, exit status and both streams": (
        {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]},
        {"exit_status": 3, "stdout": "out\n", "stderr": "err\n", "timed_out": False}),
    "a string, split without a shell": (
        {"command": "printf '%s|' 'a b' c"},
        {"exit_status": 0, "stdout": "a b|c|", "stderr": "", "timed_out": False}),
    "its own timeout": (
        {"command": ["sh", "-c", "echo before; sleep 30"], "timeout": 0.5},
        {"exit_status": None, "stdout": "before\n", "stderr": "", "timed_out": True}),
}


@pytest.mark.parametrize("case", COMMANDS)
def test_command(builtins, case):
    params, expected = COMMANDS[case]
    result = run_one(builtins, "command", params)
    assert (result.status, result.value) == ("ok", expected)
    assert result.output.startswith("command: ")


@pytest.mark.parametrize("params, error", [
    ({}, 'params: "command" must be a command line or a list of arguments'),
    ({"command": ["no-such-program-here"]}, "No such file or directory: 'no-such-program-here'"),
])
def test_command_refuses(builtins, params, error):
    result = run_one(builtins, "command", params)
    assert result.status == "failed" and error in result.error


def test_command_is_killed_at_the_engine_timeout_too(builtins):
    result = run_one(builtins, "command", {"command": ["sleep", "30"], "timeout": 60}, timeout=1)
    assert result.status == "timed_out" and result.duration < 1.5
