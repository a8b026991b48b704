"""Load average, memory and file system usage of this machine, as monitoring samples.

Tagged `monitor`: the monitoring scheduler runs it on every agent. Returns samples named
as node_exporter names them, so that existing dashboards fit:

    node_load1, node_load5, node_load15                  (/proc/loadavg)
    node_memory_MemTotal_bytes, node_memory_MemAvailable_bytes, node_memory_MemFree_bytes,
    node_memory_SwapTotal_bytes, node_memory_SwapFree_bytes   (/proc/meminfo)
    node_filesystem_size_bytes, node_filesystem_avail_bytes, node_filesystem_free_bytes
        {mountpoint}                                     (statvfs of each path)

params: `paths` (mount points to report, default ["/"]), `proc` (another /proc, for
tests). A value that cannot be read is left out; a path that cannot be read is reported
in the output and left out.
"""

import os
from pathlib import Path

NAME = "system"
TAGS = ("monitor", "system")

_MEMORY = ("MemTotal", "MemAvailable", "MemFree", "SwapTotal", "SwapFree")


def main(params, ctx):
    proc = Path(params.get("proc", "/proc"))
    paths = params.get("paths", ["/"])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError('params: "paths" must be a list of mount points')
    return _load(proc) + _memory(proc) + [s for path in paths for s in _filesystem(path, ctx)]


def _sample(metric, value, **labels):
    return {"metric": metric, "value": value, "labels": labels}


def _load(proc):
    try:
        fields = (proc / "loadavg").read_text().split()
        values = [float(v) for v in fields[:3]]
    except (OSError, ValueError):
        return []
    return [_sample(f"node_load{n}", v) for n, v in zip((1, 5, 15), values, strict=False)]


def _memory(proc):
    try:
        lines = (proc / "meminfo").read_text().splitlines()
    except OSError:
        return []
    found = {}
    for line in lines:  # "MemTotal:        8048576 kB"
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in _MEMORY and parts and parts[0].isdigit():
            found[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return [_sample(f"node_memory_{key}_bytes", found[key]) for key in _MEMORY if key in found]


def _filesystem(path, ctx):
    try:
        st = os.statvfs(path)
    except OSError as exc:
        ctx.log(f"{path}: {exc.strerror}")
        return []
    return [_sample("node_filesystem_size_bytes", st.f_blocks * st.f_frsize, mountpoint=path),
            _sample("node_filesystem_avail_bytes", st.f_bavail * st.f_frsize, mountpoint=path),
            _sample("node_filesystem_free_bytes", st.f_bfree * st.f_frsize, mountpoint=path)]
