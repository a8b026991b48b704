"""The appliance's dns component: zone from [node], SRV for its services, live hosts, bind errors.

(It lives here with the other DNS tests; tests/appliance/components/ would mirror the tree.)
"""

import asyncio
import ipaddress
import subprocess

import pytest

from appliance import config
from appliance.components import Runtime
from appliance.components.dns import DnsComponent
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from netservices.dns.zone import Host
from tests.netservices.dns.conftest import free_port, tool
from tests.netservices.dns.test_workers import short as short_from
from tests.netservices.dns.test_workers import worker_ports


async def short(port, *args):
    """dig +short, run in a thread so that the server in this event loop can answer."""
    cmd = [tool("dig"), "@127.0.0.1", "-p", str(port), "+time=5", "+tries=1", "+short", *args]
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True)
    return done.stdout.split()


async def run(cfg_data, body, runtime=None):
    comp = DnsComponent(config.validate(cfg_data), runtime)
    await comp.start()
    task = asyncio.create_task(comp.serve())
    try:
        await body(comp)
    finally:
        await comp.stop()
        await asyncio.wait_for(task, 5)


async def test_zone_from_node_with_xmpp_srv_and_live_hosts(tmp_path):
    zone_file = tmp_path / "extra.zone"
    zone_file.write_text("ldap IN A 10.0.0.5\n")
    port = free_port()
    data = {"node": {"name": "mgmt", "domain": "rack1.example", "address": "10.0.0.2"},
            "dns": {"enabled": True, "port": port, "zone_file": str(zone_file),
                    "records": ["www CNAME mgmt"]},
            "xmpp": {"enabled": True}}

    async def body(comp):
        assert await short(port, "mgmt.rack1.example") == ["10.0.0.2"]
        assert await short(port, "-x", "10.0.0.2") == ["mgmt.rack1.example."]
        assert await short(port, "SRV", "_xmpp-client._tcp.rack1.example") == \
            ["0", "0", "5222", "mgmt.rack1.example."]
        assert await short(port, "ldap.rack1.example") == ["10.0.0.5"]
        assert await short(port, "www.rack1.example") == ["mgmt.rack1.example.", "10.0.0.2"]
        comp.zones.set_host(Host("node7", (ipaddress.ip_address("10.0.0.70"),)))
        assert await short(port, "node7.rack1.example") == ["10.0.0.70"]
        comp.zones.remove_host("node7")
        assert await short(port, "node7.rack1.example") == []

    await run(data, body)


async def test_port_in_use_fails_start_naming_it():
    port = free_port()
    data = {"dns": {"enabled": True, "port": port}}

    async def body(comp):
        second = DnsComponent(config.validate(data))
        with pytest.raises(OSError, match=f"cannot listen on udp 127.0.0.1:{port}"):
            await second.start()

    await run(data, body)


async def test_bad_zone_file_fails_start(tmp_path):
    (tmp_path / "bad.zone").write_text("x IN BOGUS 1\n")
    comp = DnsComponent(config.validate({"dns": {"zone_file": str(tmp_path / "bad.zone")}}))
    with pytest.raises(ValueError, match="zone file .*bad.zone"):
        await comp.start()


async def test_enrolled_machines_resolve_through_every_worker(tmp_path):
    """A record put in the store (as enrollment does) and deleted, seen by each UDP worker."""
    store = open_store(config.validate({}).osis, tmp_path)
    port = free_port()
    data = {"node": {"name": "mgmt", "domain": "rack1.example", "address": "10.0.0.2"},
            "dns": {"enabled": True, "port": port, "workers": 2}}

    async def resolves(ports, name, expected):
        for _ in range(100):  # the component polls the store's changes every second
            answers = [await asyncio.to_thread(short_from, port, name, source=p)
                       for p in ports.values()]
            if all(a == expected for a in answers):
                return True
            await asyncio.sleep(0.1)
        return False

    async def body(comp):
        ports = await asyncio.to_thread(worker_ports, comp.server, port, "mgmt.rack1.example")
        assert await resolves(ports, "node1.rack1.example", [])
        store.put(domain.DnsRecord(guid="m1-a", name="node1.rack1.example", rtype="A",
                                   value="10.0.0.71", machine="m1"))
        assert await resolves(ports, "node1.rack1.example", ["10.0.0.71"])
        assert await resolves(ports, "node1.rack1.example", ["10.0.0.71"])  # from the tables
        store.delete("dnsrecord", "m1-a")
        assert await resolves(ports, "node1.rack1.example", [])

    try:
        await run(data, body, Runtime(status=dict, store=store))
    finally:
        store.close()
