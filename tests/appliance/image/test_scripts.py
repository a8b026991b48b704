"""The image's shell scripts, run by the host's busybox: JSON escaping and fact collection.

facts.sh reads /sys, /proc and /run/enroll through $ENROLL_SYS, $ENROLL_PROC and
$ENROLL_RUN, so a made-up machine (a directory tree) stands in for the guest here.
"""

import json
import os
import subprocess

import pytest

from appliance.image import recipe
from tests.fixtures.tools import require_tool

SCRIPTS = recipe.RECIPES / "enroll"


def _sh(script: str, *args: str, env: dict | None = None) -> str:
    busybox = require_tool("busybox")
    proc = subprocess.run([busybox, "sh", "-c", f". {SCRIPTS}/json.sh; . {SCRIPTS}/facts.sh; {script}",
                           "sh", *args], capture_output=True, timeout=30,
                          env={"PATH": os.environ["PATH"], **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode("ascii")  # the document is plain ASCII whatever the input


STRINGS = {
    "plain": "SER-123",
    "spaces and quotes": 'To Be "Filled" By O.E.M.',
    "backslashes": "C:\\path\\",
    "tab and newline": "a\tb\nc",
    "control characters": "a\x01b\x1fc\x7f",
    "a lone quote": '"',
    "dollar and backticks stay text": "$(reboot) `id` $HOME",
}


@pytest.mark.parametrize("value", STRINGS.values(), ids=STRINGS.keys())
def test_json_str_escapes_anything_a_firmware_string_holds(value):
    assert json.loads(_sh('json_str "$1"', value)) == value


def test_json_str_keeps_utf8_as_latin1_escapes_that_decode_back():
    raw = "Süper Server ✓"
    text = json.loads(_sh('json_str "$1"', raw))
    assert text.encode("latin-1").decode("utf-8") == raw


VALUES = {
    "empty string is null": ('json_str ""', "null"),
    "number": ("json_num 42", "42"),
    "not a number is null": ("json_num 4x", "null"),
    "empty number is null": ('json_num ""', "null"),
    "1 is true": ("json_bool 1", "true"),
    "0 is false": ("json_bool 0", "false"),
    "empty is false": ('json_bool ""', "false"),
}


@pytest.mark.parametrize("script, expected", VALUES.values(), ids=VALUES.keys())
def test_json_values(script, expected):
    assert _sh(script) == expected


REPLIES = {
    "compact": ('{"action":"reboot","hostname":"node-1"}', "reboot", "node-1"),
    "spaced over lines": ('{\n  "hostname" : "db-2",\n  "action" : "wait"\n}', "wait", "db-2"),
    "keys missing": ('{"ok": true}', "", ""),
    "not JSON": ("<html>502</html>", "", ""),
}


@pytest.mark.parametrize("reply, action, hostname", REPLIES.values(), ids=REPLIES.keys())
def test_json_get_reads_the_reply(reply, action, hostname):
    assert _sh('json_get "$1" action; echo; json_get "$1" hostname', reply).split("\n") == [action, hostname]


def _write(root, files: dict[str, str]) -> None:
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)


@pytest.fixture
def machine(tmp_path):
    """A made-up machine: two NICs (one without link), a SATA disk, an NVMe disk, a loop device."""
    sys_, proc, run = tmp_path / "sys", tmp_path / "proc", tmp_path / "run"
    dmi = "class/dmi/id/"
    _write(sys_, {dmi + "product_uuid": "4c4c4544-0042-3510-8052-b4c04f4e3132\n",
                  dmi + "product_serial": "  CN7 \"X\" 42  \n", dmi + "sys_vendor": "Dell Inc.\n",
                  dmi + "product_name": "PowerEdge R640\n", dmi + "board_serial": ".7XQ.\n"})
    for name, mac, driver, carrier in [("eno1", "b4:96:91:00:00:01", "i40e", "1"),
                                       ("eno2", "b4:96:91:00:00:02", "i40e", "0")]:
        _write(sys_, {f"class/net/{name}/address": mac + "\n", f"class/net/{name}/carrier": carrier + "\n"})
        (sys_ / "drivers" / driver).mkdir(parents=True, exist_ok=True)
        (sys_ / f"class/net/{name}/device").mkdir()
        (sys_ / f"class/net/{name}/device/driver").symlink_to(sys_ / "drivers" / driver)
    _write(sys_, {"class/net/lo/address": "00:00:00:00:00:00\n"})  # no device: skipped
    _write(sys_, {"block/sda/size": "937703088\n", "block/sda/device/model": "MZ7LH480HAHQ    \n",
                  "block/sda/queue/rotational": "0\n", "block/nvme0n1/size": "1000215216\n",
                  "block/nvme0n1/device/serial": "S4EMNX0R123456      \n",
                  "block/nvme0n1/device/model": "Samsung SSD 980\n", "block/nvme0n1/queue/rotational": "0\n",
                  "block/loop0/size": "0\n"})
    (sys_ / "block/sda/device/vpd_pg80").write_bytes(b"\x00\x80\x00\x0eS45NNE0M700123")
    _write(proc, {"cpuinfo": "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n\n"
                             "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n",
                  "meminfo": "MemTotal:       131891212 kB\nMemFree:  1 kB\n"})
    _write(run, {"ip.eno1": "10.0.0.17\n"})
    return {"ENROLL_SYS": str(sys_), "ENROLL_PROC": str(proc), "ENROLL_RUN": str(run)}


def test_facts_of_a_made_up_machine(machine):
    facts = json.loads(_sh('enroll_facts ""', env=machine))
    assert facts == {
        "uuid": "4c4c4544-0042-3510-8052-b4c04f4e3132", "serial": 'CN7 "X" 42', "vendor": "Dell Inc.",
        "product": "PowerEdge R640", "board_serial": ".7XQ.", "chassis_serial": None,
        "cpus": 2, "cpu_model": "Intel(R) Xeon(R) Gold 6130", "memory_mb": 128800,
        "disks": [
            {"name": "nvme0n1", "size_bytes": 1000215216 * 512, "serial": "S4EMNX0R123456",
             "model": "Samsung SSD 980", "rotational": False},
            {"name": "sda", "size_bytes": 937703088 * 512, "serial": "S45NNE0M700123",
             "model": "MZ7LH480HAHQ", "rotational": False}],
        "interfaces": [
            {"mac": "b4:96:91:00:00:01", "name": "eno1", "driver": "i40e", "link": True, "ip": "10.0.0.17",
             "boot": True, "lldp_chassis": None, "lldp_port": None},
            {"mac": "b4:96:91:00:00:02", "name": "eno2", "driver": "i40e", "link": False, "ip": None,
             "boot": False, "lldp_chassis": None, "lldp_port": None}],
    }


def test_bootif_names_the_boot_nic_even_without_an_address(machine):
    facts = json.loads(_sh('enroll_facts "$1"', "b4:96:91:00:00:02", env=machine))
    assert [n["boot"] for n in facts["interfaces"]] == [False, True]
