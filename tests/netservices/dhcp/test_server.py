"""The asyncio shell without a network: batches, commit before ACK, and a failing store."""

from ipaddress import IPv4Address

import pytest

from appliance import config
from appliance.components.dhcp import server_config
from netservices.dhcp import policy
from netservices.dhcp.config import DhcpConfig
from netservices.dhcp.inventory import StaticInventory
from netservices.dhcp.leases import MemoryLeaseStore
from netservices.dhcp.server import DhcpServer, pools
from netservices.dhcp.table import LeaseTable
from tests.netservices.dhcp.harness import BASE, SERVER
from tests.netservices.dhcp.packets import decode, message


class FakeSocket:
    """Hands out queued datagrams, then would block; records what is sent, and when."""

    def __init__(self, datagrams, log):
        self.queue, self.log, self.sent = list(datagrams), log, []

    def recvmsg(self, size, ancsize):
        if not self.queue:
            raise BlockingIOError
        return self.queue.pop(0), [], 0, ("0.0.0.0", 68)

    def sendto(self, data, dest):
        self.log.append("send")
        self.sent.append((decode(data), dest))

    def fileno(self):
        return -1


class RecordingStore(MemoryLeaseStore):
    def __init__(self, log, fail=False):
        super().__init__()
        self.log, self.fail = log, fail

    def commit(self, changes):
        self.log.append(f"commit {len(changes)}")
        if self.fail:
            raise OSError(28, "No space left on device")
        super().commit(changes)


def _server(store):
    cfg = DhcpConfig(**{**BASE, "server_address": str(SERVER), "range": ["10.0.0.100", "10.0.0.199"]})
    server = DhcpServer(cfg, store, StaticInventory())
    server.table = LeaseTable(pools(cfg))
    server.ctx = policy.Context(cfg, server.table, StaticInventory())
    return server


def _requests(n):
    return [message("request", f"52:54:00:00:01:{i:02x}", flags=0x8000,
                    options=[("requested_addr", f"10.0.0.{100 + i}")]) for i in range(n)]


def test_a_batch_is_committed_once_before_any_ack_goes_out():
    log = []
    server = _server(RecordingStore(log))
    sock = FakeSocket(_requests(5) + [b"garbage"], log)
    server._on_readable(sock, 67)
    assert log == ["commit 5"] + ["send"] * 5
    assert [r["options"]["message-type"] for r, _ in sock.sent] == [5] * 5
    assert (server.stats.received, server.stats.malformed, server.stats.commits) == (6, 1, 1)


def test_when_the_store_fails_no_ack_is_sent_but_offers_are():
    log = []
    server = _server(RecordingStore(log, fail=True))
    sock = FakeSocket(_requests(2) + [message("discover", "52:54:00:00:02:01", flags=0x8000)], log)
    server._on_readable(sock, 67)
    assert [r["options"]["message-type"] for r, _ in sock.sent] == [2], "only the OFFER"
    assert server.stats.errors == 1


def test_component_fills_dhcp_defaults_from_node(tmp_path):
    cfg = config.validate({"node": {"domain": "rack9.example", "address": "10.0.0.2",
                                    "state_dir": str(tmp_path)},
                           "dhcp": {"enabled": True, "interface": "eth1", "subnet": "10.0.0.0/24"}})
    dhcp = server_config(cfg)
    assert dhcp.domain == "rack9.example" and dhcp.server_address == IPv4Address("10.0.0.2")
    assert dhcp.lease_file == str(tmp_path / "dhcp.leases")


@pytest.mark.parametrize("keys", [{"domain": "x.example"}, {"server_address": "10.0.0.3"},
                                  {"lease_file": "/srv/leases"}])
def test_component_keeps_what_dhcp_sets(keys):
    cfg = config.validate({"node": {"domain": "rack9.example", "address": "10.0.0.2"},
                           "dhcp": {"subnet": "10.0.0.0/24", **keys}})
    key, value = next(iter(keys.items()))
    assert str(getattr(server_config(cfg), key)) == value

