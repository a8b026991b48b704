"""Namespaces and segments: hosts on one bridge reach each other and nothing else; cleanup is complete."""

import subprocess
import time

import pytest

from appliance.lab.netns import Netns, NetnsError, alive


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_hosts_on_a_segment_reach_each_other(segment):
    seg = segment(hosts=3)
    first, _, third = seg.hosts
    assert first.run(["ping", "-c", "1", "-W", "2", seg.address(2)]).returncode == 0
    assert third.run(["ping", "-c", "1", "-W", "2", seg.address(0)]).returncode == 0


def test_segment_is_not_reachable_from_the_machine(segment):
    seg = segment(hosts=1)
    result = subprocess.run(["ip", "route", "get", seg.address(0)], capture_output=True, text=True)
    assert seg.bridge not in result.stdout
    assert seg.address(0) not in subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout


def test_unaddressed_hosts_have_a_link_but_no_address(segment):
    seg = segment(hosts=2, addressed=[0])
    client = seg.hosts[1]
    assert " UP " in client.ip("-br", "link", "show", "dev", seg.nic)
    assert client.ip("-4", "addr", "show", "dev", seg.nic) == ""


def test_tap_on_a_bridge(netns):
    ns = netns()
    ns.add_bridge("br0")
    ns.add_tap("tap0", "br0")
    assert "master br0" in ns.ip("link", "show", "tap0")


def test_close_stops_processes_and_removes_the_namespace():
    ns = Netns.create("pyt")
    started = ns.popen(["sleep", "300"])
    ns.popen(["sh", "-c", "sleep 301 & echo $! > /dev/null; sleep 302"])
    stray = subprocess.run(ns.command(["sh", "-c", "setsid sleep 303 >/dev/null 2>&1 & echo $!"]),
                           capture_output=True, text=True, check=True)
    stray_pid = int(stray.stdout)
    assert started.pid in ns.pids() and stray_pid in ns.pids()
    began = time.monotonic()
    ns.close()
    assert time.monotonic() - began < 5
    assert started.poll() is not None
    assert not alive(stray_pid)
    assert ns.name not in _namespaces()


def test_names_are_unique_and_ip_errors_are_clear(netns):
    a, b = netns(), netns()
    assert a.name != b.name
    with pytest.raises(NetnsError, match="ip -n .* link set nosuchdev up: .*"):
        a.ip("link", "set", "nosuchdev", "up")
