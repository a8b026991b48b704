"""What enrollment hands a machine's agent: its JID, password, server, and controllers."""

import asyncio

from appliance.api.auth import Credentials, Guard
from appliance.api.dispatch import Dispatcher
from appliance.components import Runtime
from appliance.components.appserver import services
from appliance.config import validate
from appliance.osis.store import open_store

NIC = {"mac": "52:54:00:aa:bb:01", "ip": "10.77.0.50", "boot": True}


def test_the_agent_learns_who_may_send_it_jobs(tmp_path):
    cfg = validate({"node": {"domain": "rack.test"}, "xmpp": {"user": "ctl", "host": "10.77.0.1", "port": 5333},
                    "appserver": {"enroll_token": "tok"}})
    store = open_store(cfg.osis, tmp_path)
    try:
        dispatcher = Dispatcher(services(cfg, Runtime(status=dict, store=store)), Guard(True, "", "", "", "tok"))
        reply = asyncio.run(dispatcher.call("enroll.enroll", {"interfaces": [NIC]}, Credentials(token="tok")))
        agent = store.query("agent", [("machine", "=", reply["guid"])])[0].obj
    finally:
        store.close()
    assert reply["agent"] == {"jid": agent.jid, "password": agent.password, "server": "10.77.0.1:5333",
                              "controllers": ["ctl@rack.test"]}
