"""Build the flashable node image: Debian 12, the appliance in a venv, BIOS and UEFI boot.

Six steps, each announced with a progress line and timed (see `rootfs`, `disk`, `outputs`):
the base system (cached), the appliance's wheels, the enrollment image (cached), the root
file system, the disk, the outputs. The outputs and `build.json` land in the output
directory; a build whose `build.json` carries the same inputs key (recipe, appliance
wheel, dependencies, enrollment image, formats) is up to date and left alone.
Needs root (mmdebstrap --mode=root, chroot); a missing tool stops it before anything
is done, naming the tool and its Debian package.
"""

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from appliance.image import disk, enroll, node_recipe, outputs, recipe, rootfs
from appliance.image.disk import DiskError, Layout
from appliance.image.node_recipe import NodeRecipe

SOURCE = Path(__file__).resolve().parents[2]
"""The checkout whose wheel goes into the image."""
TOOLS = {"mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs", "sfdisk": "fdisk", "mkfs.vfat": "dosfstools",
         "mmd": "mtools", "mcopy": "mtools", "grub-mkimage": "grub-common",
         "grub-mkstandalone": "grub-common", "unshare": "util-linux", "tar": "tar", "du": "coreutils",
         "apt-get": "apt", "dpkg-deb": "dpkg"}
FORMAT_TOOLS = {"raw": {"zstd": "zstd"}, "qcow2": {"qemu-img": "qemu-utils"},
                "box": {"qemu-img": "qemu-utils"}}
GRUB = {"i386-pc": "grub-pc-bin", "x86_64-efi": "grub-efi-amd64-bin"}
GRUB_LIB = Path("/usr/lib/grub")
STEPS = 6


Result = recipe.BuildResult  # what build() returns


class BuildError(Exception):
    """The image cannot be built; the message says why and what to do."""


def missing_tools(formats: tuple[str, ...], path: str | None = None) -> dict[str, str]:
    """Tools (and GRUB platform directories) this build needs and cannot find -> Debian package."""
    needed = dict(TOOLS)
    for fmt in formats:
        needed.update(FORMAT_TOOLS[fmt])
    search = os.pathsep.join(filter(None, [path or os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    missing = {tool: pkg for tool, pkg in needed.items() if shutil.which(tool, path=search) is None}
    for platform, pkg in GRUB.items():
        if not (GRUB_LIB / platform / "boot.img" if platform == "i386-pc" else GRUB_LIB / platform).exists():
            missing[f"{GRUB_LIB / platform}"] = pkg
    return missing


def check_tools(formats: tuple[str, ...]) -> None:
    missing = missing_tools(formats)
    if missing:
        names = ", ".join(f"{tool} (Debian package {pkg})" for tool, pkg in missing.items())
        packages = " ".join(sorted(set(missing.values())))
        raise BuildError(f"missing tools: {names}; install them with `apt-get install {packages}` "
                         "(`make test` and `make run` do)")


def default_cache(state_dir: str) -> Path:
    """Where the base system tarball, the dependency wheels and the work directory live."""
    return Path(state_dir) / "cache" / "image" / "node"


def read_info(output: Path) -> dict:
    try:
        return json.loads((Path(output) / "build.json").read_text())
    except (OSError, ValueError):
        return {}


def build(output: Path, cache: Path, formats: tuple[str, ...] = outputs.FORMATS, *,
          source: Path | None = None, packages: Path | None = None, node: NodeRecipe | None = None,
          force: bool = False, say: Callable[[str], None] = print) -> Result:
    """Build the node image into `output` from the checkout `source` (default: this one);
    `packages` caches the enrollment image's .debs."""
    check_tools(formats)
    if os.geteuid() != 0:
        raise BuildError("must run as root (mmdebstrap --mode=root and chroot need it)")
    output, cache = Path(output), Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    node = node or node_recipe.load()
    with open(cache / ".lock", "w") as lock:  # one build at a time per cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        packages = packages or cache / "packages"
        return _Build(node, output, cache, formats, source or SOURCE, packages, say).run(force)


class _Build:
    def __init__(self, node: NodeRecipe, output: Path, cache: Path, formats: tuple[str, ...], source: Path,
                 packages: Path, say: Callable[[str], None]):
        self.node, self.output, self.cache, self.formats = node, output, cache, formats
        self.source, self.packages, self._say = source, packages, say
        self.work = cache / "work"
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.step = 0

    def say(self, text: str) -> None:
        self._say(f"node image: {text}")

    def begin(self, name: str) -> float:
        self.step += 1
        self.say(f"[{self.step}/{STEPS}] {name}")
        return time.monotonic()

    def done(self, name: str, since: float) -> None:
        self.timings[name] = round(time.monotonic() - since, 1)
        self.say(f"[{self.step}/{STEPS}] {name}: done in {self.timings[name]:.0f} s")

    def run(self, force: bool) -> Result:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        try:
            return self._run(force)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def _run(self, force: bool) -> Result:
        t = self.begin("base system")
        base = rootfs.base_tarball(self.node, self.cache, self.say, refresh=force)
        self.done("base system", t)
        t = self.begin("appliance wheel and dependencies")
        wheel, deps = rootfs.wheels(self.source, self.cache, self.work, self.say)
        self.done("appliance wheel and dependencies", t)
        t = self.begin("enrollment image")
        enroll_recipe = recipe.load()
        enroll_dir = self.cache / f"enroll-{enroll_recipe.hash()[:12]}"
        enrolled = enroll.build(enroll_recipe, enroll_dir, self.packages)
        self.say(f"enrollment image: {'built' if enrolled.built else 'cached'}, kernel "
                 f"{enrolled.info['kernel_version']}")
        self.done("enrollment image", t)
        key = self._inputs_key(wheel, deps, enrolled.info)
        current = read_info(self.output)
        if not force and current.get("inputs") == key and _complete(self.output, current):
            self.say(f"up to date in {self.output} (inputs {key[:12]}); --force rebuilds it")
            return Result(self.output, current, built=False)
        root_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"pylabs-node:{key}"))
        root = self.work / "root"
        t = self.begin("root file system")
        rootfs.unpack(base, root)
        rootfs.install_appliance(self.node, root, wheel, deps)
        rootfs.configure(self.node, root, root_uuid, enrolled.output)
        self.done("root file system", t)
        t = self.begin("disk (ext4 root, EFI system partition, GRUB for BIOS and UEFI)")
        layout = Layout.plan(self.node.size_gib, self.node.esp_mib)
        raw = self._disk(root, layout, root_uuid, self.work / "disk.raw")
        self.done("disk (ext4 root, EFI system partition, GRUB for BIOS and UEFI)", t)
        t = self.begin(f"outputs: {', '.join(self.formats)}")
        files = self._outputs(root, layout, root_uuid, raw)
        self.done(f"outputs: {', '.join(self.formats)}", t)
        info = self._info(key, root_uuid, layout, wheel, enrolled.info, files, root)
        self._install(files, info)
        sizes = ", ".join(f"{name} {f['size'] / 2**20:.0f} MiB" for name, f in info["files"].items())
        self.say(f"built in {self.output} in {info['build_seconds']:.0f} s: {sizes}")
        return Result(self.output, info, built=True)

    def _inputs_key(self, wheel: Path, deps: Path, enroll_info: dict) -> str:
        digest = hashlib.sha256(f"{self.node.hash()}\n{enroll_info['recipe_hash']}\n".encode())
        digest.update(hashlib.sha256(wheel.read_bytes()).hexdigest().encode())
        digest.update("\n".join(sorted(p.name for p in deps.glob("*.whl"))).encode())
        digest.update(",".join(self.formats).encode())
        return digest.hexdigest()

    def _disk(self, root: Path, layout: Layout, root_uuid: str, raw: Path) -> Path:
        used = rootfs.used_bytes(root)
        if used * 1.15 > layout.root_size:
            raise BuildError(f"the root file system needs {used / 2**20:.0f} MiB (+15 %), the partition has "
                             f"{layout.root_size / 2**20:.0f} MiB: raise [disk] size_gib in the recipe")
        self.core = disk.bios_core(root_uuid, self.work / "core.img")
        self.boot_img = (GRUB_LIB / "i386-pc" / "boot.img").read_bytes()
        disk.efi_loader(root_uuid, self.work / "BOOTX64.EFI")
        self.esp = self.work / "esp.img"
        disk.esp(self.work / "BOOTX64.EFI", self.esp, layout.esp_size)
        self.say(f"root file system: {used / 2**20:.0f} MiB in a "
                 f"{layout.root_size / 2**20:.0f} MiB partition")
        disk.root_filesystem(root, self.work / "root.ext4", layout.root_size, root_uuid)
        disk.assemble(raw, layout, self.esp, self.work / "root.ext4", self.core, self.boot_img)
        return raw

    def _outputs(self, root: Path, layout: Layout, root_uuid: str, raw: Path) -> dict[str, Path]:
        files = {}
        if "raw" in self.formats:
            files["raw"] = self.work / outputs.NAMES["raw"]
            outputs.raw_zst(raw, files["raw"])
        if "qcow2" in self.formats:
            files["qcow2"] = self.work / outputs.NAMES["qcow2"]
            outputs.qcow2(raw, files["qcow2"])
        if "box" in self.formats:
            self.say("vagrant box: the same disk plus the vagrant user")
            rootfs.add_vagrant_user(self.node, root)
            disk.root_filesystem(root, self.work / "root.ext4", layout.root_size, root_uuid)
            disk.assemble(raw, layout, self.esp, self.work / "root.ext4", self.core, self.boot_img)
            outputs.qcow2(raw, self.work / "box.img")
            files["box"] = self.work / outputs.NAMES["box"]
            vagrantfile = (self.node.directory / self.node.vagrantfile).read_text()
            outputs.box(self.work / "box.img", files["box"], self.node.size_gib, vagrantfile)
        return files

    def _info(self, key: str, root_uuid: str, layout: Layout, wheel: Path, enroll_info: dict,
              files: dict[str, Path], root: Path) -> dict:
        kernel = os.readlink(root / "boot/vmlinuz").removeprefix("vmlinuz-")
        return {
            "inputs": key,
            "recipe_hash": self.node.hash(),
            "base_hash": self.node.base_hash(),
            "appliance_wheel": wheel.name,
            "kernel_version": kernel,
            "enroll_kernel_version": enroll_info["kernel_version"],
            "root_uuid": root_uuid,
            "disk_bytes": layout.size,
            "formats": list(self.formats),
            "files": {path.name: {"format": fmt, "size": path.stat().st_size, "sha256": _sha256(path)}
                      for fmt, path in files.items()},
            "step_seconds": self.timings,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - self.started, 1),
            "python": os.readlink(root / "usr/bin/python3"),
        }

    def _install(self, files: dict[str, Path], info: dict) -> None:
        """Move the outputs in, then write build.json: a reader never sees a stale hash."""
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "build.json").unlink(missing_ok=True)
        for path in files.values():
            path.chmod(0o644)
            shutil.move(str(path), self.output / path.name)
        tmp = self.output / ".build.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self.output / "build.json")


def _complete(output: Path, info: dict) -> bool:
    files = info.get("files", {})
    return bool(files) and all((output / name).is_file() and (output / name).stat().st_size == f["size"]
                               for name, f in files.items())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["BuildError", "DiskError", "Result", "build", "check_tools", "default_cache", "missing_tools"]
