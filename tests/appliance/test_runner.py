"""The supervisor: start, stop, crash and restart with backoff, start-up failure, stuck stop."""

import asyncio
import time

import pytest

from appliance.runner import Backoff, Component, StartupError, Supervisor

FAST = Backoff(initial=0.05, maximum=0.2, healthy_after=60)


class Probe(Component):
    """A component that records its life and can be told to crash."""

    def __init__(self, name, *, crash_times=0, fail_start=False, stuck=False):
        self.name = name
        self.crash_times, self.fail_start, self.stuck = crash_times, fail_start, stuck
        self.events: list[str] = []
        self._stopped = asyncio.Event()

    async def start(self):
        self.events.append("start")
        if self.fail_start:
            raise OSError(98, "Address already in use")
        self._stopped = asyncio.Event()

    async def serve(self):
        self.events.append("serve")
        if self.crash_times:
            self.crash_times -= 1
            raise RuntimeError(f"{self.name} fell over")
        await self._stopped.wait()

    async def stop(self):
        self.events.append("stop")
        if self.stuck:
            await asyncio.sleep(3600)
        self._stopped.set()


async def _run_for(supervisor, seconds):
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await supervisor.run(stop)


async def test_starts_serves_and_stops_cleanly():
    a, b = Probe("a"), Probe("b")
    sup = Supervisor([a, b])
    assert await _run_for(sup, 0.1) is True
    assert a.events == ["start", "serve", "stop"] and b.events == ["start", "serve", "stop"]
    assert {s["state"] for s in sup.status().values()} == {"stopped"}


async def test_crash_is_restarted_and_others_keep_serving(caplog):
    crashy, steady = Probe("crashy", crash_times=2), Probe("steady")
    sup = Supervisor([crashy, steady], backoff=FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if sup.status()["crashy"]["restarts"] == 2:
            break
    status = sup.status()
    assert status["crashy"] == {"state": "running", "restarts": 2,
                                "last_error": "RuntimeError: crashy fell over"}
    assert status["steady"]["state"] == "running" and steady.events == ["start", "serve"]
    stop.set()
    assert await task is True
    assert "component.crashed" in caplog.text and "crashy fell over" in caplog.text


async def test_restart_that_cannot_start_keeps_trying():
    comp = Probe("flaky", crash_times=1)
    sup = Supervisor([comp], backoff=FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    await asyncio.sleep(0.01)
    comp.fail_start = True  # the restart's start() fails: back off and try again
    await asyncio.sleep(0.4)
    assert comp.events.count("start") >= 3 and sup.status()["flaky"]["state"] == "restarting"
    comp.fail_start = False
    await asyncio.sleep(0.4)
    assert sup.status()["flaky"] == {"state": "running", "restarts": 1,
                                     "last_error": "RuntimeError: flaky fell over"}
    stop.set()
    assert await task is True


async def test_start_failure_is_fatal_and_stops_the_started():
    first, broken, never = Probe("first"), Probe("broken", fail_start=True), Probe("never")
    with pytest.raises(StartupError, match="broken: .*Address already in use"):
        await _run_for(Supervisor([first, broken, never]), 0.1)
    assert first.events == ["start", "stop"]
    assert never.events == []


async def test_stop_gives_up_on_a_stuck_component_within_the_timeout():
    stuck = Probe("stuck", stuck=True)
    sup = Supervisor([stuck, Probe("fine")], stop_timeout=0.3)
    began = time.monotonic()
    assert await _run_for(sup, 0.05) is False
    assert time.monotonic() - began < 1.5


async def test_stop_during_backoff_does_not_wait_it_out():
    comp = Probe("down", crash_times=1)
    sup = Supervisor([comp], backoff=Backoff(initial=30, maximum=30))
    began = time.monotonic()
    assert await _run_for(sup, 0.1) is True
    assert time.monotonic() - began < 1


@pytest.mark.parametrize("runs,expected", [
    ([0, 0, 0, 0, 0, 0, 0], [0.5, 1, 2, 4, 8, 16, 30]),
    ([0, 0, 100, 0], [0.5, 1, 0.5, 1]),
])
def test_backoff_doubles_and_resets_after_a_healthy_run(runs, expected):
    backoff = Backoff(initial=0.5, maximum=30, healthy_after=60)
    assert [backoff.delay(r) for r in runs] == expected
