"""The built-in monitor tasklet `system`: load, memory and file systems, as valid samples."""

import os

import pytest

from appliance.monitoring.samples import parse_result
from appliance.tasklets import Engine

MEMINFO = """MemTotal:        8048576 kB
MemFree:          123456 kB
MemAvailable:    4000000 kB
Buffers:           10000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
"""


@pytest.fixture(scope="module")
def engine():
    return Engine.load([], timeout=20)


def run(engine, params=None):
    [result] = engine.execute(["monitor"], params or {})
    assert result.name == "system" and result.status == "ok", result.error
    return result


def values(result) -> dict:
    return {(s["metric"], tuple(s["labels"].items())): s["value"] for s in result.value}


def test_it_reads_load_and_memory_from_proc_and_file_systems_from_statvfs(engine, tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "loadavg").write_text("0.50 1.25 2.00 1/123 4567\n")
    (proc / "meminfo").write_text(MEMINFO)
    got = values(run(engine, {"proc": str(proc), "paths": [str(tmp_path)]}))
    st = os.statvfs(tmp_path)
    assert got.pop(("node_filesystem_size_bytes", (("mountpoint", str(tmp_path)),))) == st.f_blocks * st.f_frsize
    assert {key[0] for key in got} == {"node_filesystem_avail_bytes", "node_filesystem_free_bytes",
                                       "node_load1", "node_load5", "node_load15", "node_memory_MemTotal_bytes",
                                       "node_memory_MemFree_bytes", "node_memory_MemAvailable_bytes",
                                       "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes"}
    assert (got[("node_load1", ())], got[("node_load5", ())], got[("node_load15", ())]) == (0.5, 1.25, 2.0)
    assert got[("node_memory_MemTotal_bytes", ())] == 8048576 * 1024
    assert got[("node_memory_MemAvailable_bytes", ())] == 4000000 * 1024


def test_this_machine_gives_samples_the_scheduler_keeps(engine):
    result = run(engine)
    parsed = parse_result("me@rack.test", [result.as_dict()], now=1.0)
    assert parsed.rejected == [] and parsed.failed == [] and len(parsed.samples) == 11
    got = values(result)
    assert got[("node_memory_MemTotal_bytes", ())] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert got[("node_filesystem_size_bytes", (("mountpoint", "/"),))] == os.statvfs("/").f_blocks * os.statvfs("/").f_frsize


def test_what_cannot_be_read_is_left_out_and_said(engine, tmp_path):
    result = run(engine, {"proc": str(tmp_path / "none"), "paths": ["/", str(tmp_path / "gone")]})
    assert {s["metric"] for s in result.value} == {"node_filesystem_size_bytes", "node_filesystem_avail_bytes",
                                                   "node_filesystem_free_bytes"}
    assert f"{tmp_path / 'gone'}: No such file or directory" in result.output


def test_bad_paths_fail_the_tasklet_with_the_reason(engine):
    [result] = engine.execute(["monitor"], {"paths": "/"})
    assert result.status == "failed" and '"paths" must be a list' in result.error
