"""Processes for the benches: many clients at once under one deadline; stopping a peer."""

import subprocess
import time


def run_all(commands: list[list[str]], timeout: float) -> tuple[float, list[bool]]:
    """Start every command, wait for all (killing any still running at `timeout`);
    returns the seconds it took and which commands exited 0."""
    began = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for cmd in commands]
    ok = []
    for proc in procs:
        try:
            ok.append(proc.wait(timeout=max(1, timeout - (time.perf_counter() - began))) == 0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            ok.append(False)
    return time.perf_counter() - began, ok


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds; reaped."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
