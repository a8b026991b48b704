"""Kernel modules without kmod: read `.modinfo`, write and read `modules.dep`, order insmods.

Debian's kernel package ships no `modules.dep` (its postinst runs depmod), and the image
is built without installing the package, so `write_modules_dep` makes one from each
module's own `depends=` list, in depmod's format: `kernel/a.ko: kernel/b.ko kernel/c.ko`,
every dependency listed (transitively), to be loaded last-listed first.
`resolve()` turns the recipe's module names into an insmod order from that file.
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path

_ELF64_LE = b"\x7fELF\x02\x01"


def normalize(name: str) -> str:
    """Module names compare with '-' and '_' the same (nvme-core is nvme_core)."""
    return name.replace("-", "_")


def module_name(path: str) -> str:
    """`kernel/drivers/nvme/host/nvme-core.ko` -> `nvme_core`."""
    return normalize(path.rsplit("/", 1)[-1].split(".ko", 1)[0])


def modinfo(data: bytes) -> dict[str, list[str]]:
    """The `key=value` strings of a module's `.modinfo` section, by key."""
    if data[:6] != _ELF64_LE:
        raise ValueError("not a little-endian ELF64 module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    entsize, count, names_index = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * entsize)
        return name, offset, size

    names_offset = section(names_index)[1]
    for i in range(count):
        name, offset, size = section(i)
        if data[names_offset + name:].startswith(b".modinfo\0"):
            info: dict[str, list[str]] = {}
            for item in data[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    return {}


def direct_dependencies(moddir: Path) -> dict[str, list[str]]:
    """Each module's path (relative to `moddir`) -> the paths of the modules it names in depends=."""
    paths = {module_name(p.name): p.relative_to(moddir).as_posix() for p in moddir.rglob("*.ko")}
    deps = {}
    for rel in paths.values():
        listed = modinfo((moddir / rel).read_bytes()).get("depends", [""])[0]
        deps[rel] = [paths[normalize(d)] for d in listed.split(",") if d and normalize(d) in paths]
    return deps


def write_modules_dep(moddir: Path) -> Path:
    """Write `moddir/modules.dep` (depmod's format) from the modules' own metadata."""
    direct = direct_dependencies(moddir)
    lines = []
    for rel in sorted(direct):
        order = _load_order([rel], direct)[:-1]  # dependencies first, then rel itself
        lines.append(f"{rel}: {' '.join(reversed(order))}".rstrip())
    target = moddir / "modules.dep"
    target.write_text("\n".join(lines) + "\n")
    return target


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """`modules.dep` text -> each module's path -> its dependencies, as listed."""
    deps = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[path.strip()] = rest.split()
    return deps


@dataclass
class Resolution:
    """The recipe's modules as this kernel has them."""

    order: list[str] = field(default_factory=list)
    """Module paths to insmod, in this order (dependencies before the modules needing them)."""
    builtin: list[str] = field(default_factory=list)
    """Names built into the kernel: nothing to load."""
    missing: list[str] = field(default_factory=list)
    """Names this kernel has neither as a module nor built in."""


def resolve(wanted: list[str] | tuple[str, ...], modules_dep: dict[str, list[str]],
            builtin: set[str] = frozenset()) -> Resolution:
    """The insmod order for `wanted` (module names), each one's dependencies first."""
    by_name = {module_name(path): path for path in modules_dep}
    builtin = {normalize(b) for b in builtin}
    result = Resolution()
    roots = []
    for name in wanted:
        key = normalize(name)
        if key in by_name:
            roots.append(by_name[key])
        elif key in builtin:
            result.builtin.append(name)
        else:
            result.missing.append(name)
    # modules.dep lists every dependency; the last listed is loaded first (as modprobe does)
    result.order = _load_order(roots, {p: list(reversed(d)) for p, d in modules_dep.items()})
    return result


def builtin_names(moddir: Path) -> set[str]:
    """Names in `modules.builtin` (built into the kernel image)."""
    path = moddir / "modules.builtin"
    return {module_name(line) for line in path.read_text().split()} if path.exists() else set()


def _load_order(roots: list[str], deps: dict[str, list[str]]) -> list[str]:
    """Depth-first: each path after everything it depends on, each path once."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for root in roots:
        visit(root)
    return order
