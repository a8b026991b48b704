"""Tests of the throwaway-server fixtures in tests/fixtures/servers.py.

They use each server the way the product will (psycopg, etcd3gw, slixmpp), check that
everything listens on loopback only, that stop() leaves no process and no open port
behind, and that a server that cannot start fails with its log.
"""

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import etcd3gw
import psycopg
import pytest

from tests.fixtures.servers import (
    LOOPBACK,
    EjabberdServer,
    EtcdServer,
    PostgresServer,
    ServerError,
    free_port,
    pid_alive,
    port_accepts,
)
from tests.fixtures.tools import require_tool
from tests.fixtures.xmpp import loopback_client, offline, online

XMPP_TIMEOUT = 15  # seconds for a client to log in, or for a message to arrive


def test_free_port_can_be_bound_on_loopback():
    port = free_port()
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))
    assert 1024 < port < 65536


# --- PostgreSQL -------------------------------------------------------------------------


def test_postgres_attributes(postgres):
    assert (postgres.host, postgres.user, postgres.dbname) == (LOOPBACK, "postgres", "postgres")
    assert f"port={postgres.port}" in postgres.dsn
    assert pid_alive(postgres.pid)
    assert (postgres.socket_dir / f".s.PGSQL.{postgres.port}").is_socket()


def test_postgres_query_table_roundtrip(postgres):
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        assert conn.execute("SHOW listen_addresses").fetchone() == (LOOPBACK,)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        conn.execute("CREATE TEMP TABLE boot (mac text PRIMARY KEY, n int)")
        conn.execute("INSERT INTO boot VALUES (%s, %s), (%s, %s)", ("aa", 1, "bb", 2))
        assert conn.execute("SELECT mac, n FROM boot ORDER BY mac").fetchall() == [
            ("aa", 1), ("bb", 2)]


def test_postgres_over_its_private_unix_socket(postgres):
    with psycopg.connect(host=str(postgres.socket_dir), port=postgres.port,
                         user=postgres.user, dbname=postgres.dbname) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_pg_db_is_a_fresh_database(pg_db, postgres):
    with psycopg.connect(pg_db) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        assert name != postgres.dbname
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
        conn.execute("CREATE TABLE host (name text PRIMARY KEY, ip inet)")
        conn.execute("INSERT INTO host VALUES ('node1', '10.0.0.5')")
        conn.commit()
    with psycopg.connect(pg_db) as conn:  # committed: visible to a new connection
        assert conn.execute("SELECT name, host(ip) FROM host").fetchall() == [
            ("node1", "10.0.0.5")]


def test_drop_database_removes_it_even_while_connected(postgres):
    """What pg_db does after each test."""
    name = f"test_{secrets.token_hex(6)}"
    conn = psycopg.connect(postgres.create_database(name))
    postgres.drop_database(name)
    conn.close()
    with psycopg.connect(postgres.dsn) as admin:
        gone = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert gone.fetchone() == (0,)


# --- etcd ---------------------------------------------------------------------------------


def test_etcd_attributes(etcd):
    assert etcd.host == LOOPBACK
    assert etcd.endpoint == f"http://{LOOPBACK}:{etcd.port}"
    assert pid_alive(etcd.pid)


def test_etcd_put_get(etcd, etcd_prefix):
    client = etcd3gw.client(host=etcd.host, port=etcd.port)
    assert client.put(etcd_prefix + b"node1", b"10.0.0.5") is True
    assert client.get(etcd_prefix + b"node1") == [b"10.0.0.5"]
    client.put(etcd_prefix + b"node2", b"10.0.0.6")
    keys = sorted(meta["key"] for _, meta in client.get_prefix(etcd_prefix))
    assert keys == [etcd_prefix + b"node1", etcd_prefix + b"node2"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _put_if_unchanged(client, key: bytes, value: bytes, mod_revision: int) -> bool:
    """Optimistic-concurrency write: put only if key's mod_revision is still the same."""
    txn = {"compare": [{"key": _b64(key), "result": "EQUAL", "target": "MOD",
                        "mod_revision": mod_revision}],
           "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
           "failure": []}
    return client.transaction(txn).get("succeeded", False)


def test_etcd_transaction_compares_mod_revision(etcd, etcd_prefix):
    client = etcd.client()
    key = etcd_prefix + b"lease"
    client.put(key, b"v1")
    [(_, meta)] = client.get(key, metadata=True)
    revision = int(meta["mod_revision"])
    assert _put_if_unchanged(client, key, b"v2", revision) is True
    assert _put_if_unchanged(client, key, b"v3", revision) is False  # stale revision
    assert client.get(key) == [b"v2"]


def test_etcd_prefix_is_unique_and_empty(etcd, etcd_prefix):
    assert isinstance(etcd_prefix, bytes) and etcd_prefix.startswith(b"/test/")
    assert etcd.client().get_prefix(etcd_prefix) == []


# --- XMPP -----------------------------------------------------------------------------------


def _register_pair(server) -> tuple[str, str]:
    tag = secrets.token_hex(3)
    return server.register(f"alice{tag}", "alice-pw"), server.register(f"bob{tag}", "bob-pw")


def test_xmpp_server_attributes(xmpp_server):
    assert (xmpp_server.host, xmpp_server.domain) == (LOOPBACK, "rack.test")
    assert pid_alive(xmpp_server.pid) and pid_alive(xmpp_server.epmd_pid)
    assert port_accepts(xmpp_server.port)


async def test_xmpp_message_between_two_registered_users(xmpp_server):
    alice_jid, bob_jid = await asyncio.to_thread(_register_pair, xmpp_server)
    alice, bob = loopback_client(alice_jid, "alice-pw"), loopback_client(bob_jid, "bob-pw")
    received = asyncio.get_running_loop().create_future()
    bob.add_event_handler(
        "message", lambda msg: received.done() or received.set_result(msg))
    try:
        await asyncio.wait_for(
            asyncio.gather(online(alice, xmpp_server, XMPP_TIMEOUT), online(bob, xmpp_server, XMPP_TIMEOUT)),
            XMPP_TIMEOUT)
        assert alice.boundjid.bare == alice_jid and bob.boundjid.bare == bob_jid
        alice.send_message(mto=bob.boundjid.full, mbody="boot node1 from pxe", mtype="chat")
        msg = await asyncio.wait_for(received, XMPP_TIMEOUT)
    finally:
        await asyncio.gather(offline(alice), offline(bob))
    assert msg["body"] == "boot node1 from pxe"
    assert msg["from"].bare == alice_jid


async def test_xmpp_wrong_password_is_refused(xmpp_server):
    """Accounts really are checked: a wrong password does not log in."""
    jid = await asyncio.to_thread(xmpp_server.register, f"carol{secrets.token_hex(3)}", "right")
    client = loopback_client(jid, "wrong")
    failed = asyncio.ensure_future(client.wait_until("failed_all_auth", XMPP_TIMEOUT))
    started = asyncio.ensure_future(client.wait_until("session_start", XMPP_TIMEOUT))
    client.connect(xmpp_server.host, xmpp_server.port)
    try:
        await failed
        assert not started.done()  # never logged in
    finally:
        started.cancel()
        await offline(client)


# --- all servers ------------------------------------------------------------------------


def _family(*pids: int) -> set[int]:
    """`pids`, every process in their process groups, and all their descendants."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True,
                         timeout=10).stdout.split()
    table = [tuple(map(int, out[i:i + 3])) for i in range(0, len(out), 3)]
    groups = {pgid for pid, _, pgid in table if pid in pids}
    family = set(pids) | {pid for pid, _, pgid in table if pgid in groups}
    while True:
        more = {pid for pid, ppid, _ in table if ppid in family} - family
        if not more:
            return family
        family |= more


def _listeners(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, pid) of every TCP/UDP listening socket owned by one of `pids`."""
    out = subprocess.run([require_tool("ss"), "-H", "-ltunp"], capture_output=True, text=True,
                         timeout=10).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        for pid in pids:
            if f"pid={pid}," in line:
                found.append((fields[4], pid))
    return found


def test_servers_listen_on_loopback_only(postgres, etcd, xmpp_server):
    pids = _family(postgres.pid, etcd.pid, xmpp_server.pid, xmpp_server.epmd_pid)
    listeners = _listeners(pids)
    addresses = [addr for addr, _ in listeners]
    for port in (postgres.port, etcd.port, xmpp_server.port, xmpp_server.epmd_port):
        assert f"{LOOPBACK}:{port}" in addresses
    # epmd always adds ::1 next to the address it is given; that is loopback too.
    assert all(a.startswith(f"{LOOPBACK}:") or a.startswith("[::1]:") for a in addresses), \
        listeners
    assert not any(a.endswith(":4369") for a in addresses)  # no shared epmd


@pytest.mark.parametrize("server_class", [PostgresServer, EtcdServer, EjabberdServer])
def test_stop_leaves_no_process_and_no_port(server_class):
    server = server_class().start()
    try:
        leaders = [server.pid] + ([server.epmd_pid] if server_class is EjabberdServer else [])
        pids = _family(*leaders)
        ports = [server.port] + ([server.epmd_port] if server_class is EjabberdServer else [])
        assert all(port_accepts(port) for port in ports)
        directory = server.dir
    finally:
        server.stop()
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not any(port_accepts(port) for port in ports)
    assert not directory.exists()


def test_a_server_that_cannot_start_fails_with_its_log():
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        server = EtcdServer(port=squatter.getsockname()[1])
        with pytest.raises(ServerError, match="(?s)EtcdServer: healthy: server exited.*in use"):
            server.start()
    assert server.dir is None and not pid_alive(server.pid)


KILLED_RUNNER = """
import json, os, sys, time
from tests.fixtures.servers import {name}
server = {name}().start()
leaders = [server.pid] + ([server.epmd_pid] if hasattr(server, "epmd_pid") else [])
print(json.dumps({{"leaders": leaders, "dir": str(server.dir)}}), flush=True)
time.sleep(120)  # killed before this ends, without stopping the server
"""


@pytest.mark.parametrize("server_class", [PostgresServer, EjabberdServer])
def test_a_killed_test_run_leaves_no_server_behind(server_class):
    """As when `timeout` or a cancelled CI job SIGKILLs pytest: no teardown runs."""
    runner = subprocess.Popen([sys.executable, "-c", KILLED_RUNNER.format(name=server_class.__name__)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        started = json.loads(runner.stdout.readline())
        pids = _family(*started["leaders"])
        assert pids and all(pid_alive(pid) for pid in started["leaders"])
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and ([p for p in pids if pid_alive(p)] or Path(started["dir"]).exists()):
        time.sleep(0.1)
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not Path(started["dir"]).exists()
