"""The monitoring component over the appliance's own XMPP controller (appliance.fabric):
a real agent on the real ejabberd is polled and its samples land in OSIS; stopping the
component stops the polling."""

import asyncio
import secrets

from agent.client import Agent
from appliance.components import Runtime
from appliance.components.monitoring import Monitoring
from appliance.config import validate
from appliance.fabric.controller import Controller

from .conftest import eventually


async def test_the_component_polls_the_agents_the_controller_sees(xmpp_server, builtin_engine, store, tmp_path):
    tag = secrets.token_hex(3)
    ctl_jid = await asyncio.to_thread(xmpp_server.register, f"appliance{tag}", "pw")
    agent_jid = await asyncio.to_thread(xmpp_server.register, f"node{tag}", "pw")
    controller = Controller(ctl_jid, "pw", xmpp_server.host, xmpp_server.port,
                            agents=lambda: [agent_jid])  # the Agent objects in OSIS, in the appliance
    agent = Agent(agent_jid, "pw", xmpp_server.host, xmpp_server.port, builtin_engine, controllers=[ctl_jid])
    runtime = Runtime(status=dict, store=store)
    cfg = validate({"node": {"state_dir": str(tmp_path)}, "osis": {"enabled": True}, "xmpp": {"enabled": True},
                    "monitoring": {"enabled": True, "interval": 1}})
    component = Monitoring(cfg, runtime)
    await component.start()
    serving = asyncio.ensure_future(component.serve())
    controller.start()
    agent.start()
    try:
        await eventually(controller.connected)
        runtime.controller = controller  # as the xmpp component does once it is connected
        await eventually(lambda: agent_jid in controller.online())
        await eventually(lambda: store.query("monitorsample", [("agent", "=", agent_jid)]))
    finally:
        await component.stop()
        await asyncio.wait_for(serving, 10)
        await asyncio.gather(agent.stop(), controller.stop())
    got = {s.obj.metric for s in store.query("monitorsample", [("agent", "=", agent_jid)])}
    assert {"node_load1", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes"} <= got
