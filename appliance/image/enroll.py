"""Build the enrollment netboot image: `vmlinuz`, `initrd.img` and `build.json` in one directory.

The kernel and busybox come from Debian packages (see `debian`); the initramfs holds
busybox, the recipe's files (the /init that collects facts and POSTs them) and the
recipe's kernel modules with their dependencies, in insmod order (see `kmod`). A build
whose `build.json` carries the recipe's hash is up to date and is left alone.
"""

import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.image import cpio, debian, kmod
from appliance.image.recipe import BuildResult, Recipe

# Directories of the initramfs; busybox puts its applet links in the bin ones at boot.
_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/share", "dev", "proc", "sys",
         "run", "tmp", "etc", "root", "lib", "lib/enroll", "lib/modules")
_MODULE_LIST = "lib/enroll/modules"  # module paths, one a line, in insmod order


@dataclass
class Result(BuildResult):
    """What `build()` did, and the modules the recipe names that the kernel lacks."""

    missing: list[str] = field(default_factory=list)


def build(recipe: Recipe, output: Path, cache: Path, force: bool = False) -> Result:
    """Build the image from `recipe` into `output`, downloading packages into `cache`."""
    output, cache = Path(output), Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:  # one build at a time per cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_info(output)
        if not force and current.get("recipe_hash") == recipe.hash() and _complete(output, current):
            return Result(output, current, built=False)
        return _build(recipe, output, cache, refresh=force)


def read_info(output: Path) -> dict:
    """The `build.json` of a built image, or {} when there is none."""
    try:
        return json.loads((Path(output) / "build.json").read_text())
    except (OSError, ValueError):
        return {}


def _complete(output: Path, info: dict) -> bool:
    files = info.get("files", {})
    return bool(files) and all((output / name).is_file() and (output / name).stat().st_size == f["size"]
                               for name, f in files.items())


def _build(recipe: Recipe, output: Path, cache: Path, refresh: bool) -> Result:
    started = time.monotonic()
    kernel = debian.fetch(debian.resolve(recipe.kernel_package), cache, refresh)
    busybox = debian.fetch(recipe.busybox_package, cache, refresh)
    version = kernel_version(kernel.root)
    moddir = kernel.root / "lib" / "modules" / version
    if not (moddir / "modules.dep").exists():
        kmod.write_modules_dep(moddir)
    deps = kmod.parse_modules_dep((moddir / "modules.dep").read_text())
    modules = kmod.resolve(recipe.modules, deps, kmod.builtin_names(moddir))
    archive = _initramfs(recipe, busybox.root / recipe.busybox_path, moddir, version, modules, deps)
    files = {"vmlinuz": (kernel.root / "boot" / f"vmlinuz-{version}").read_bytes(),
             "initrd.img": archive.gzip()}
    info = {
        "recipe_hash": recipe.hash(),
        "kernel_version": version,
        "packages": {kernel.name: kernel.version, busybox.name: busybox.version},
        "files": {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in files.items()},
        "modules": [kmod.module_name(p) for p in modules.order],
        "modules_builtin": modules.builtin,
        "modules_missing": modules.missing,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 2),
    }
    _install(output, files, info)
    return Result(output, info, built=True, missing=modules.missing)


def kernel_version(root: Path) -> str:
    """The one kernel version unpacked under `root` (its lib/modules directory name)."""
    versions = sorted(p.name for p in (root / "lib" / "modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise debian.PackageError(f"{root}: expected one kernel in lib/modules, found {versions}")
    return versions[0]


def _initramfs(recipe: Recipe, busybox: Path, moddir: Path, version: str,
               modules: kmod.Resolution, deps: dict[str, list[str]]) -> cpio.Archive:
    archive = cpio.Archive()
    for name in _DIRS:
        archive.directory(name)
    archive.device("dev/console", "c", 5, 1)
    archive.device("dev/null", "c", 1, 3, mode=0o666)
    archive.file("bin/busybox", busybox.read_bytes(), mode=0o755)
    archive.symlink("bin/sh", "busybox")
    for source, target in sorted(recipe.files.items()):
        _parents(archive, target)
        path = recipe.directory / source
        archive.file(target, path.read_bytes(), mode=0o755 if os.access(path, os.X_OK) else 0o644)
    base = f"lib/modules/{version}"
    archive.directory(base)
    for rel in modules.order:
        _parents(archive, f"{base}/{rel}")
        archive.file(f"{base}/{rel}", (moddir / rel).read_bytes())
    kept = set(modules.order)  # a modules.dep of what is in the image, for busybox modprobe
    dep_lines = [f"{p}: {' '.join(d for d in deps[p] if d in kept)}".rstrip() for p in modules.order]
    archive.file(f"{base}/modules.dep", "\n".join(dep_lines).encode() + b"\n")
    archive.file(_MODULE_LIST, "".join(f"/{base}/{rel}\n" for rel in modules.order).encode())
    archive.file("lib/enroll/version", f"kernel={version} recipe={recipe.hash()[:12]}\n".encode())
    return archive


def _parents(archive: cpio.Archive, path: str) -> None:
    names = archive.names()
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        parent = "/".join(parts[:i])
        if parent not in names:
            archive.directory(parent)
            names.add(parent)


def _install(output: Path, files: dict[str, bytes], info: dict) -> None:
    """Write the files next to their final names, then rename: a reader never sees half a file."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "build.json").unlink(missing_ok=True)  # no stale hash while files change
    for name, data in files.items():
        tmp = output / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        tmp.replace(output / name)
    tmp = output / ".build.json.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(output / "build.json")


def default_cache(state_dir: str) -> Path:
    """Where downloaded and unpacked packages are kept between builds."""
    return Path(state_dir) / "cache" / "image"
