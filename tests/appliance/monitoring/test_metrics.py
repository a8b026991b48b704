"""/metrics on the real app server: the monitoring samples of real agents, with their
labels and timestamps, beside the process's own metrics; served even without a store."""

import asyncio
import contextlib

import httpx
from prometheus_client.parser import text_string_to_metric_families

from appliance.components import Runtime, available
from appliance.components.appserver import AppServer, build_app
from appliance.config import validate
from tests.fixtures.servers import free_port

from .conftest import eventually


@contextlib.asynccontextmanager
async def serving(*components):
    """Start the components and serve them until the block ends."""
    tasks = []
    try:
        for component in components:
            await component.start()
            tasks.append(asyncio.ensure_future(component.serve()))
        yield
    finally:
        for component in components:
            await component.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def scrape(port: int) -> tuple[httpx.Response, dict]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    return reply, {f.name: f for f in text_string_to_metric_families(reply.text)}


def config(tmp_path, port):
    return validate({"node": {"state_dir": str(tmp_path)}, "osis": {"enabled": True},
                     "appserver": {"port": port}, "xmpp": {"enabled": True}, "monitoring": {"enabled": True, "interval": 1}})


async def test_metrics_show_the_agents_samples_with_labels_beside_the_process_metrics(
        fleet, builtin_engine, store, tmp_path):
    factories = available()  # every component module, as `appliance run` loads them
    jid = await fleet.add("exported", builtin_engine)
    port = free_port()
    cfg = config(tmp_path, port)
    runtime = Runtime(status=dict, store=store, controller=fleet)
    app = AppServer("127.0.0.1", port, build_app(cfg, runtime))
    async with serving(app):
        async with serving(factories["monitoring"](cfg, runtime)):
            await eventually(lambda: store.query("monitorsample", [("agent", "=", jid)]))
        reply, families = await scrape(port)  # monitoring stopped: what is stored stays
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    [load] = [s for s in families["node_load1"].samples if s.labels == {"agent": jid}]
    stored = {s.obj.metric: s.obj for s in store.query("monitorsample", [("agent", "=", jid)])}
    assert load.value == stored["node_load1"].value
    assert abs(load.timestamp - stored["node_load1"].timestamp) < 0.001  # milliseconds on the wire
    [avail] = [s for s in families["node_filesystem_avail_bytes"].samples if s.labels["agent"] == jid]
    assert avail.labels == {"agent": jid, "mountpoint": "/"} and families["node_load1"].type == "gauge"
    assert {"dhcp_packets_received", "tftp_active_transfers", "appliance_monitor_runs"} <= set(families)
    [runs] = [s for s in families["appliance_monitor_runs"].samples if s.labels == {"outcome": "ok"}]
    assert runs.value >= 1


async def test_metrics_are_served_without_a_store(tmp_path):
    available()
    port = free_port()
    runtime = Runtime(status=dict)  # osis not running
    async with serving(AppServer("127.0.0.1", port, build_app(config(tmp_path, port), runtime))):
        reply, families = await scrape(port)
    assert reply.status_code == 200
    assert "dhcp_packets_received" in families and "node_load1" not in families
