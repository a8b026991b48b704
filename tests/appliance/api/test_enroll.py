"""Enrollment: facts in, a machine in the domain out — named, reserved, resolvable, once."""

import subprocess

import httpx
import pytest

from appliance.config import validate
from appliance.inventory import MachineReservations
from appliance.osis.kv import SqliteKV
from appliance.osis.schema import domain
from appliance.osis.store import PREFIX, open_store
from netservices.dhcp.inventory import StaticInventory
from tests.fixtures.servers import free_port
from tests.fixtures.tools import require_tool

from .conftest import TOKEN, Appliance

ENROLL_TOKEN = "enroll-t0ken"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("enroll")
    dns_port = free_port()
    appliance = Appliance(state, f'enroll_token = "{ENROLL_TOKEN}"\nenroll_action = "poweroff"\n'
                                 f'[dns]\nenabled = true\nport = {dns_port}\nreverse_zones = ["10.77.0.0/24"]\n')
    appliance.dns_port, appliance.state = dns_port, state
    yield appliance
    log = appliance.stop()
    assert "level=error" not in log, log


def facts(mac="52:54:00:ab:cd:01", uuid="5f3b7a2e-0000-4000-8000-000000000001", serial="SER-1", ip="10.77.0.101"):
    return {"uuid": uuid, "serial": serial, "vendor": "QEMU", "product": "Standard PC", "cpus": 2,
            "cpu_model": "QEMU Virtual CPU", "memory_mb": 1024,
            "disks": [{"name": "vda", "size_bytes": 1 << 30, "serial": "DISK-1", "model": None, "rotational": False}],
            "interfaces": [{"mac": mac, "name": "eth0", "driver": "e1000", "link": True, "ip": ip, "boot": True}]}


def post(lab, body, token=ENROLL_TOKEN, raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{lab.base}/api/v1/enroll", json=None if raw else body, content=raw,
                      headers=headers, timeout=10)


def machines(lab):
    return httpx.get(f"{lab.base}/api/v1/machines", timeout=10).json()


def dig(lab, *args):
    cmd = [require_tool("dig"), "@127.0.0.1", "-p", str(lab.dns_port), "+time=5", "+tries=1", "+short", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.split()


def test_a_new_machine_joins_the_domain(lab):
    reply = post(lab, facts())
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["hostname"] == "node-abcd01" and body["fqdn"] == "node-abcd01.rack.internal"
    assert body["ip"] == "10.77.0.101" and body["action"] == "poweroff" and body["known"] is False
    assert body["agent"]["jid"] == "node-abcd01@rack.internal" and len(body["agent"]["password"]) >= 20
    machine = httpx.get(f"{lab.base}/api/v1/machines/{body['guid']}").json()
    assert machine["serial"] == "SER-1" and machine["state"] == "ENROLLED"
    assert machine["disks"][0]["serial"] == "DISK-1" and machine["interfaces"][0]["mac"] == "52:54:00:ab:cd:01"
    events = httpx.get(f"{lab.base}/api/v1/events", params={"machine": body["guid"]}).json()
    assert [e["kind"] for e in events] == ["machine.enrolled"]


def test_its_name_resolves_both_ways_without_restart(lab):
    guid = post(lab, facts(mac="52:54:00:ab:cd:02", uuid="5f3b7a2e-0000-4000-8000-000000000002",
                           ip="10.77.0.102")).json()["guid"]
    assert guid
    for _ in range(50):
        if dig(lab, "node-abcd02.rack.internal"):
            break
    assert dig(lab, "node-abcd02.rack.internal") == ["10.77.0.102"]
    assert dig(lab, "-x", "10.77.0.102") == ["node-abcd02.rack.internal."]


def test_its_agent_and_name_are_stored_before_it_shows_enrolled(lab):
    """Whoever sees the machine ENROLLED (a user, the DNS and accounts followers) finds
    its A record and agent in the store already."""
    guid = post(lab, facts(mac="52:54:00:ab:cd:09", uuid="5f3b7a2e-0000-4000-8000-000000000009",
                           ip="10.77.0.109")).json()["guid"]
    kv = SqliteKV(lab.state / "osis" / "objects.db")
    try:
        revision = {kind: kv.get(PREFIX + f"{kind}/{key}".encode()).revision for kind, key in
                    (("machine", guid), ("agent", f"agent-{guid}"), ("dnsrecord", f"{guid}-a"))}
    finally:
        kv.close()
    assert revision["agent"] < revision["machine"] and revision["dnsrecord"] < revision["machine"]


def test_enrolling_again_updates_never_duplicates(lab):
    first = post(lab, facts(mac="52:54:00:ab:cd:03", uuid="5f3b7a2e-0000-4000-8000-000000000003")).json()
    count = len(machines(lab))
    again = facts(mac="52:54:00:ab:cd:03", uuid="5F3B7A2E-0000-4000-8000-000000000003", serial="SER-NEW")
    second = post(lab, again).json()
    by_mac = post(lab, {**facts(mac="52:54:00:ab:cd:03"), "uuid": None}).json()
    assert first["guid"] == second["guid"] == by_mac["guid"] and second["known"] is True
    assert second["hostname"] == first["hostname"] and second["agent"] == first["agent"]
    assert len(machines(lab)) == count
    assert httpx.get(f"{lab.base}/api/v1/machines/{first['guid']}").json()["serial"] == "SER-1"


def test_host_names_never_collide(lab, tmp_path):
    a = post(lab, facts(mac="52:54:00:00:00:11", uuid=None, ip="10.77.0.111")).json()
    b = post(lab, facts(mac="52:54:01:00:00:11", uuid=None, ip="10.77.0.112")).json()
    assert a["hostname"] == "node-000011" and b["hostname"] == "node-000011-2"


BAD = {
    "no interfaces": ({**facts(), "interfaces": []}, None),
    "a malformed MAC": ({**facts(), "interfaces": [{"mac": "52:54:00:zz:00:01"}]}, None),
    "absurd memory": ({**facts(), "memory_mb": 10**12}, None),
    "negative disk": ({**facts(), "disks": [{"name": "vda", "size_bytes": -1}]}, None),
    # schemathesis found size_bytes false taken as 0 (pydantic's lax int)
    "a disk size of false": ({**facts(), "disks": [{"name": "vda", "size_bytes": False}]}, None),
    "true CPUs": ({**facts(), "cpus": True}, None),
    "not an address": ({**facts(), "interfaces": [{"mac": "52:54:00:00:00:98", "ip": "10.0.0.300"}]}, None),
    "an unknown fact": ({**facts(), "colour": "blue"}, None),
    "not JSON": (None, b"{facts"),
}


@pytest.mark.parametrize("body,raw", BAD.values(), ids=BAD.keys())
def test_bad_facts_are_refused_and_nothing_is_stored(lab, body, raw):
    before = len(machines(lab))
    reply = post(lab, body, raw=raw)
    assert reply.status_code == 400 and reply.json()["error"]["message"]
    assert len(machines(lab)) == before


def test_nics_sharing_a_mac_are_kept(lab):
    """Bonded NICs report the bond's MAC: the machine enrolls with both, found by that MAC."""
    body = {**facts(mac="52:54:00:00:00:99", uuid=None),
            "interfaces": [{"mac": "52:54:00:00:00:99", "name": "eth0", "boot": True},
                           {"mac": "52:54:00:00:00:99", "name": "eth1"}]}
    reply = post(lab, body)
    assert reply.status_code == 200, reply.text
    found = [m for m in machines(lab) if any(n["mac"] == "52:54:00:00:00:99" for n in m["interfaces"])]
    assert len(found) == 1 and [n["name"] for n in found[0]["interfaces"]] == ["eth0", "eth1"]
    before = len(machines(lab))
    assert post(lab, body).json()["hostname"] == reply.json()["hostname"]  # enrolls again as itself
    assert len(machines(lab)) == before


@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1]])
def test_wrong_or_missing_token(lab, token):
    before = len(machines(lab))
    assert post(lab, facts(mac="52:54:00:ee:ee:ee"), token=token).status_code == 401
    assert len(machines(lab)) == before


def test_the_admin_token_may_enroll_too(lab):
    assert post(lab, facts(mac="52:54:00:ee:ee:01", uuid=None), token=TOKEN).status_code == 200


def test_boot_scripts_follow_the_inventory(lab):
    unknown = httpx.get(f"{lab.base}/boot/ipxe", params={"mac": "52:54:00:aa:aa:aa"}).text
    assert unknown.startswith("#!ipxe") and "/assets/enroll/vmlinuz" in unknown
    assert f"appliance.token={ENROLL_TOKEN}" in unknown and "BOOTIF=01-52-54-00-aa-aa-aa" in unknown
    host = lab.base.split("//")[1]
    assert f"appliance.url=http://{host}" in unknown
    post(lab, facts(mac="52:54:00:aa:aa:aa", uuid=None, ip="10.77.0.120"))
    known = httpx.get(f"{lab.base}/boot/ipxe", params={"mac": "52-54-00-AA-AA-AA"}).text
    assert "node-aaaaaa" in known and "sanboot" in known and "enroll" not in known
    chain = httpx.get(f"{lab.base}/boot/ipxe", params={"mac": "nonsense"}).text
    assert "chain http://" in chain and "${net0/mac}" in chain


def test_deleting_a_machine_forgets_its_records(lab):
    body = post(lab, facts(mac="52:54:00:dd:dd:01", uuid=None, ip="10.77.0.130")).json()
    for _ in range(50):
        if dig(lab, body["fqdn"]):
            break
    reply = httpx.delete(f"{lab.base}/api/v1/machines/{body['guid']}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200
    for _ in range(50):
        if not dig(lab, body["fqdn"]):
            break
    assert dig(lab, body["fqdn"]) == []
    assert "/assets/enroll/" in httpx.get(f"{lab.base}/boot/ipxe", params={"mac": "52:54:00:dd:dd:01"}).text


def test_dhcp_reserves_the_enrolled_address(tmp_path):
    store = open_store(validate({}).osis, tmp_path)
    nic = domain.NetworkInterface(mac="52:54:00:01:02:03", ip="10.77.0.55", boot=True)
    store.put(domain.Machine(guid="m", hostname="n1", ip="10.77.0.55", interfaces=[nic]))
    inventory = MachineReservations(StaticInventory(), lambda: store)
    found = inventory.reservation("52:54:00:01:02:03")
    assert (str(found.ip), found.hostname) == ("10.77.0.55", "n1")
    assert inventory.reserved_for(found.ip) == "52:54:00:01:02:03"
    assert inventory.reservation("52:54:00:09:09:09") is None
    store.close()


def test_utf8_serials_sent_byte_by_byte_come_back_whole(lab):
    """busybox has no UTF-8 encoder: the image escapes each byte above 0x7e as \\u00XX."""
    body = facts(mac="52:54:00:ab:cd:77", uuid=None, serial="S\u00c3\u00a9rie-7")
    guid = post(lab, body).json()["guid"]
    assert httpx.get(f"{lab.base}/api/v1/machines/{guid}").json()["serial"] == "Série-7"
