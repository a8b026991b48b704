"""Running tasklets: selection by tags and match(), priority order, timeouts, output, failures."""

import time

import pytest

from appliance.config import ConfigError, validate
from appliance.tasklets import Engine


def engine(tasklet_dir, **files) -> Engine:
    for name, source in files.items():
        tasklet_dir(name, source)
    loaded = Engine.load([tasklet_dir.dir], builtin=False, timeout=10)
    assert loaded.errors == []
    return loaded


def names(results) -> list[str]:
    return [r.name for r in results]


SELECTION = {
    "one tag": (["x"], ["both", "only_x"]),
    "two tags: all must be there": (["x", "y"], ["both"]),
    "a tag nobody has": (["z"], []),
    "the other tag": (["y"], ["both", "only_y"]),
}


@pytest.mark.parametrize("case", SELECTION)
def test_tasklets_having_every_requested_tag_run(tasklet_dir, case):
    tags, expected = SELECTION[case]
    e = engine(tasklet_dir, both="TAGS = ['x', 'y']\ndef main(params, ctx): return 1\n",
               only_x="TAGS = ['x']\ndef main(params, ctx): return 1\n",
               only_y="TAGS = ('y',)\ndef main(params, ctx): return 1\n")
    assert names(e.execute(tags)) == expected


def test_match_decides_per_params(tasklet_dir):
    e = engine(tasklet_dir, sda="""
        TAGS = ['disk']
        def match(params, ctx):
            return params.get("disk") == "sda"
        def main(params, ctx):
            return "checked " + params["disk"]
        """, always="TAGS = ['disk']\ndef main(params, ctx): return 'always'\n")
    assert [(r.name, r.status, r.value) for r in e.execute(["disk"], {"disk": "sda"})] == [
        ("always", "ok", "always"), ("sda", "ok", "checked sda")]
    assert [(r.name, r.status, r.value) for r in e.execute(["disk"], {"disk": "sdb"})] == [
        ("always", "ok", "always"), ("sda", "skipped", None)]


def test_run_in_priority_order_then_by_name(tasklet_dir, tmp_path):
    source = "TAGS = ['t']\nPRIORITY = {}\ndef main(params, ctx):\n" \
             "    open(params['log'], 'a').write(ctx.name + '\\n')\n"
    e = engine(tasklet_dir, late=source.format(90), early=source.format(-5), b_mid=source.format(50),
               a_mid=source.format(50), default="TAGS = ['t']\ndef main(params, ctx):\n"
               "    open(params['log'], 'a').write(ctx.name + '\\n')\n")
    log = tmp_path / "order"
    results = e.execute(["t"], {"log": str(log)})
    assert names(results) == ["early", "a_mid", "b_mid", "default", "late"]
    assert log.read_text().split() == ["early", "a_mid", "b_mid", "default", "late"]


@pytest.mark.parametrize("body", ["while True: pass", "time.sleep(100)"], ids=["busy loop", "sleep"])
def test_timeout_kills_a_runaway_tasklet_and_the_next_still_runs(tasklet_dir, body):
    e = engine(tasklet_dir, runaway=f"""
        import time
        TAGS = ['t']
        PRIORITY = 1
        def main(params, ctx):
            print("started", flush=True)
            {body}
        """, after="TAGS = ['t']\ndef main(params, ctx): return 'still ran'\n")
    began = time.monotonic()
    runaway, after = e.execute(["t"], timeout=1)
    assert time.monotonic() - began < 1 + 1.5
    assert (runaway.status, runaway.error, runaway.output) == ("timed_out", "killed after 1 s", "started\n")
    assert 1 <= runaway.duration < 1.5
    assert (after.status, after.value) == ("ok", "still ran")


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (it was reparented when its parent died)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("then", ["time.sleep(100)", "return 'done'"], ids=["timed out", "returned"])
def test_programs_a_tasklet_started_are_killed_with_it(tasklet_dir, tmp_path, then):
    e = engine(tasklet_dir, spawner=f"""
        import subprocess, time
        TAGS = ['t']
        def main(params, ctx):
            child = subprocess.Popen(["sleep", "100"])
            open(params["pidfile"], "w").write(str(child.pid))
            {then}
        """)
    pidfile = tmp_path / "pid"
    [result] = e.execute(["t"], {"pidfile": str(pidfile)}, timeout=1)
    assert result.status in ("timed_out", "ok")
    assert _dead(int(pidfile.read_text()))


def test_output_of_the_tasklet_and_its_programs_is_captured_in_order(tasklet_dir):
    e = engine(tasklet_dir, chatty="""
        import os, sys
        TAGS = ['t']
        def main(params, ctx):
            print("to stdout")
            print("to stderr", file=sys.stderr)
            ctx.log("via ctx.log", 42)
            os.system("echo from a shell")
            return "done"
        """)
    [result] = e.execute(["t"])
    assert result.status == "ok" and result.value == "done"
    assert result.output == "to stdout\nto stderr\nvia ctx.log 42\nfrom a shell\n"


def test_an_exception_fails_that_tasklet_only(tasklet_dir):
    e = engine(tasklet_dir, broken="""
        TAGS = ['t']
        PRIORITY = 1
        def main(params, ctx):
            print("looking for sdb")
            raise ValueError("disk sdb is missing")
        """, fine="TAGS = ['t']\ndef main(params, ctx): return 'fine'\n")
    broken, fine = e.execute(["t"])
    assert broken.status == "failed" and broken.output == "looking for sdb\n"
    assert broken.error.startswith("Traceback (most recent call last):")
    assert "broken.py\", line 6, in main" in broken.error
    assert broken.error.endswith("ValueError: disk sdb is missing\n")
    assert (fine.status, fine.value) == ("ok", "fine")


FAILURES = {
    "a value that is not JSON": ("return {1, 2}",
                                 "main() returned a value that is not JSON-serializable: Object of type set"),
    "the process exits": ("import os; os._exit(3)", "its process ended (exit status 3) without a result"),
    "sys.exit": ("import sys; sys.exit('giving up')", "SystemExit: giving up"),
    "match raises": (None, "ZeroDivisionError: division by zero"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failures_are_reported(tasklet_dir, case):
    body, error = FAILURES[case]
    if body is None:
        source = "TAGS = ['t']\ndef match(params, ctx): return 1 / 0\ndef main(params, ctx): pass\n"
    else:
        source = f"TAGS = ['t']\ndef main(params, ctx):\n    {body}\n"
    [result] = engine(tasklet_dir, case_=source).execute(["t"])
    assert result.status == "failed" and error in result.error


def test_ctx_carries_name_params_node_tags_and_timeout(tasklet_dir):
    e = engine(tasklet_dir, echo="""
        NAME = "echo"
        TAGS = ['a', 'b']
        def main(params, ctx):
            assert ctx.params is params
            return {"name": ctx.name, "params": params, "node": ctx.node, "tags": ctx.tags,
                    "timeout": ctx.timeout}
        """)
    [result] = e.execute(["b"], {"disk": "sda", "n": [1, 2]}, node={"hostname": "node-1"}, timeout=7)
    assert result.value == {"name": "echo", "params": {"disk": "sda", "n": [1, 2]},
                            "node": {"hostname": "node-1"}, "tags": ["b"], "timeout": 7}


def test_a_file_broken_after_loading_fails_when_run(tasklet_dir):
    e = engine(tasklet_dir, later="TAGS = ['t']\ndef main(params, ctx): return 1\n")
    tasklet_dir("later", "TAGS = ['t']\n")
    [result] = e.execute(["t"])
    assert result.status == "failed" and result.error.endswith("later.py: main(params, ctx) is missing")


@pytest.mark.parametrize("args, message", [
    (([], {}), "name at least one tag"),
    ((["t"], {"when": object()}), "params and node must be JSON-serializable"),
])
def test_bad_calls_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        Engine({}).execute(*args)


def test_the_config_table_builds_the_engine(tmp_path):
    cfg = validate({"tasklets": {"paths": [str(tmp_path)], "builtin": False, "timeout": 5}}).tasklets
    e = Engine.from_config(cfg)
    assert (e.tasklets, e.errors, e.timeout) == ({}, [], 5)
    with pytest.raises(ConfigError, match=r"tasklets.timeout: 0 "):
        validate({"tasklets": {"timeout": 0}})
