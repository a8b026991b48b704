"""kill -9 in the middle of a load: every lease a client saw ACKed is still there after the
restart, and no address is ever given to two clients."""

import json
import signal
import subprocess

from tests.netservices.dhcp.conftest import EXCHANGE, ROOT


def test_kill_9_under_load_loses_no_acked_lease(dhcp_segment):
    served = dhcp_segment(range=["10.77.0.10", "10.77.0.250"])
    load = served.clients[0].popen([*EXCHANGE, "--timeout", "0.5", "dora", "--count", "150",
                                    "--deadline", "60"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    acked = []
    for line in load.stdout:
        acked.append(json.loads(line))
        if len(acked) == 60:
            served.kill(signal.SIGKILL)  # mid-stream: batches in flight, journal open
            before_kill = list(acked)
            served.start()
    load.wait(timeout=70)
    assert len(before_kill) == 60 and len(acked) > 100, "the load went on after the restart"

    leases = served.leases()
    lost = [a for a in acked if leases.get(a["ip"]) is None or leases[a["ip"]].mac != a["mac"]]
    assert lost == [], "ACKed leases missing from the journal"
    assert len({a["ip"] for a in acked}) == len(acked), "one address given to two clients"

    for a in before_kill[:5]:  # and the restarted server honours them
        reply = json.loads(served.client(0, "send", "--kind", "discover", "--mac", a["mac"]).stdout)
        assert reply["yiaddr"] == a["ip"]
