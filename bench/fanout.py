"""The agent fabric: one job fanned out to 100 and 1000 agents, and a stream of jobs to one.

A throwaway ejabberd (the test fixtures' helper; accounts made in bulk by in-band
registration) on loopback; the agents live in AGENT_PROCESSES processes
(bench/_fanout_agents.py), the controller (appliance.fabric.controller) in this one.

1. Fan-out: a script job (`echo ok`: one /bin/sh per agent) sent to every agent at once
   by the controller; the time until every result is in. The peer is an XEP-0199 ping to
   each of the same agents — the same round trip with no job in it — and the ratio is what
   running the job costs. Then the same fan-out through the workflow engine: N jobs
   queued in OSIS (SQLite, in a temp dir) until all are SUCCEEDED, which adds 3 writes a job.
2. Stream: jobs to one agent, one after the other, and with 4 in flight (the agent's
   default max_jobs), against pings one after the other: jobs/s and pings/s.

Counts and times are bounded; the target is 1000 agents answered in under 5 s.
"""

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.protocol import ScriptJob
from appliance.config import validate
from appliance.fabric.controller import Controller
from appliance.jobs import core, submit
from appliance.jobs.engine import Engine
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from tests.fixtures.servers import EjabberdServer

SIZES = (100, 1000)
AGENT_PROCESSES = 2
STREAM = 300  # jobs in each stream measurement
PASSWORD = "bench-pw"
TARGET = 5.0  # seconds for 1000 agents to answer
DEADLINE = 120.0  # seconds any one measurement may take
ROOT = Path(__file__).parents[1]


def _agents(server: EjabberdServer, jids: list[str], controller: str) -> list[subprocess.Popen]:
    procs = []
    for part in range(AGENT_PROCESSES):
        share = jids[part::AGENT_PROCESSES]
        proc = subprocess.Popen([sys.executable, "-m", "bench._fanout_agents", server.host, str(server.port),
                                 controller, PASSWORD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                cwd=ROOT, text=True)
        proc.stdin.write(",".join(share) + "\n")
        proc.stdin.flush()
        procs.append(proc)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _ready(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), DEADLINE)
        if line.strip() != "ready":
            raise RuntimeError(f"an agent process did not get ready (exit {proc.poll()})")


async def _timed(coro) -> tuple[float, object]:
    began = time.perf_counter()
    result = await asyncio.wait_for(coro, DEADLINE)
    return time.perf_counter() - began, result


async def _fan_out(ctl: Controller, jids: list[str], tag: str) -> tuple[float, float]:
    job = lambda i: ScriptJob(f"{tag}{i}", 30, "echo ok")  # noqa: E731
    jobs_s, results = await _timed(asyncio.gather(*(ctl.send_job(j, job(i), 60) for i, j in enumerate(jids))))
    bad = [r for r in results if r.status != "ok" or r.output != "ok\n"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not come back ok: {bad[0]}")
    ping = ctl.plugin["xep_0199"]
    ping_s, _ = await _timed(asyncio.gather(*(ping.ping(f"{j}/agent", timeout=60) for j in jids)))
    return jobs_s, ping_s


async def _through_engine(ctl: Controller, me: str, jids: list[str], state: Path) -> float:
    store = open_store(validate({}).osis, state)
    for i, jid in enumerate(jids):
        store.put(domain.Agent(guid=f"agent-{i}", jid=jid))
    engine = Engine(lambda: store, lambda: ctl, me, core.Policy(), tick=0.2)
    runner = asyncio.create_task(engine.run())
    try:
        began = time.perf_counter()
        queued = [submit.run_script(store, jid, "echo ok", 30).obj.guid for jid in jids]
        async with asyncio.timeout(DEADLINE):  # a look at the views, not 1000 reads in the loop
            while any(store.query("job", [("state", "=", core.name(s))], limit=1) for s in core.LIVE):
                await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - began
        states = {store.get("job", g).obj.state for g in queued}
        if states != {domain.JobState.SUCCEEDED}:
            raise RuntimeError(f"engine fan-out ended in states {states}")
        return elapsed
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        store.close()


async def _stream(ctl: Controller, jid: str) -> dict[str, float]:
    async def serial(n):
        for i in range(n):
            await ctl.send_job(jid, ScriptJob(f"s{secrets.token_hex(4)}{i}", 30, "true"), 30)

    async def windowed(n, window=4):
        sem = asyncio.Semaphore(window)

        async def one(i):
            async with sem:
                await ctl.send_job(jid, ScriptJob(f"w{secrets.token_hex(4)}{i}", 30, "true"), 30)
        await asyncio.gather(*(one(i) for i in range(n)))

    async def pings(n):
        for _ in range(n):
            await ctl.plugin["xep_0199"].ping(f"{jid}/agent", timeout=30)

    out = {}
    for name, fn in (("jobs one at a time", serial), ("jobs 4 in flight", windowed), ("pings", pings)):
        seconds, _ = await _timed(fn(STREAM))
        out[name] = STREAM / seconds
    return out


async def _size(ctl: Controller, server: EjabberdServer, me: str, jids: list[str]) -> dict[str, float]:
    """Every measurement with len(jids) agents online."""
    procs = _agents(server, jids, me)
    try:
        began = time.perf_counter()
        await _ready(procs)
        async with asyncio.timeout(DEADLINE):
            while not set(jids) <= ctl.online():
                await asyncio.sleep(0.05)
        out = {"online": time.perf_counter() - began}
        out["jobs"], out["pings"] = await _fan_out(ctl, jids, f"f{len(jids)}x")
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as state:
            out["engine"] = await _through_engine(ctl, me, jids, Path(state))
        if len(jids) == min(SIZES):
            out["stream"] = await _stream(ctl, jids[0])
        return out
    finally:
        _stop(procs)


async def run(server: EjabberdServer) -> int:
    tag = secrets.token_hex(2)
    me = server.register_many([f"bench{tag}"], PASSWORD)[0]
    jids = server.register_many([f"a{tag}x{i}" for i in range(max(SIZES))], PASSWORD)
    ctl = Controller(me, PASSWORD, server.host, server.port, agents=lambda: jids)
    ctl.start()
    status, stream = 0, {}
    try:
        async with asyncio.timeout(30):
            while not ctl.connected():
                await asyncio.sleep(0.05)
        print(f"{'agents':>6}  {'online in':>9}  {'job fan-out':>11}  {'ping fan-out':>12}  {'job/ping':>8}"
              f"  {'via engine':>10}")
        for size in SIZES:
            m = await _size(ctl, server, me, jids[:size])
            stream = m.get("stream", stream)
            print(f"{size:>6}  {m['online']:>8.1f}s  {m['jobs']:>10.2f}s  {m['pings']:>11.2f}s"
                  f"  {m['jobs'] / m['pings']:>7.1f}x  {m['engine']:>9.2f}s", flush=True)
            if size == 1000 and m["jobs"] >= TARGET:
                print(f"fanout: 1000 agents answered in {m['jobs']:.2f} s: not under the {TARGET:g} s target")
                status = 1
        ratio = stream["jobs one at a time"] / stream["pings"]
        print("stream to one agent: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in stream.items())
              + f"; jobs/pings one at a time: {ratio:.2f}")
    finally:
        await ctl.stop()
    return status


def main() -> int:
    print(f"{os.cpu_count()} CPUs; agents in {AGENT_PROCESSES} processes; job: script 'echo ok'", flush=True)
    server = EjabberdServer(registration=True).start()
    try:
        return asyncio.run(run(server))
    finally:
        server.stop()
