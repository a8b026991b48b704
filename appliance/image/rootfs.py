"""The node image's root file system, in a directory that `mkfs.ext4 -d` turns into the root partition.

1. The Debian base system: `mmdebstrap --mode=root` into a tarball, cached in the build
   cache under the recipe's `base_hash()` (only a change of suite, sources, packages or
   path filters builds it again).
2. The appliance: its wheel built from this checkout, its dependencies as wheels in the
   cache (downloaded from PyPI once, then installed offline), installed with the image's
   own Python into the recipe's venv.
3. The recipe's files, the enrollment image, hostname, fstab, GRUB's config, the units
   enabled and disabled; SSH host keys and the machine id removed (made at first boot).

Commands inside the image run under `chroot` in a private mount and PID namespace
(`unshare`), which takes /proc, /sys and /dev with it when it ends.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.image.disk import DiskError, grub_cfg, run
from appliance.image.node_recipe import NodeRecipe

Say = Callable[[str], None]
WHEELS_IN_IMAGE = "/tmp/appliance-wheels"
# Before the kernel is installed: /boot/vmlinuz and /boot/initrd.img as symlinks that
# kernel upgrades keep current (grub.cfg boots those).
KERNEL_IMG_HOOK = ("--essential-hook=printf 'do_symlinks = yes\\nlink_in_boot = yes\\n' "
                   '> "$1/etc/kernel-img.conf"')


def mmdebstrap_command(recipe: NodeRecipe, out: Path) -> list[str]:
    cmd = ["mmdebstrap", "--mode=root", f"--variant={recipe.variant}", "--format=tar",
           "--include=" + ",".join(recipe.packages)]
    cmd += [f"--dpkgopt=path-exclude={p}" for p in recipe.path_exclude]
    cmd += [f"--dpkgopt=path-include={p}" for p in recipe.path_include]
    cmd.append(KERNEL_IMG_HOOK)
    return cmd + [recipe.suite, str(out), *recipe.sources]


def base_tarball(recipe: NodeRecipe, cache: Path, say: Say, refresh: bool = False) -> Path:
    """The base system tarball for this recipe, built with mmdebstrap unless cached (or
    `refresh`: Debian's current packages, e.g. security updates)."""
    target = cache / f"base-{recipe.base_hash()[:16]}.tar"
    if target.is_file() and not refresh:
        say(f"base system: cached ({target.name}, {target.stat().st_size / 2**20:.0f} MiB)")
        return target
    say(f"base system: mmdebstrap {recipe.suite} with {len(recipe.packages)} packages (a few minutes)")
    partial = target.with_suffix(".part")
    proc = subprocess.Popen(mmdebstrap_command(recipe, partial), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if line.startswith("I: "):
            say("  mmdebstrap: " + line[3:].strip())
    if proc.wait() != 0:
        partial.unlink(missing_ok=True)
        raise DiskError("mmdebstrap failed:\n  " + "\n  ".join(tail))
    partial.replace(target)
    for old in cache.glob("base-*.tar"):
        if old != target:
            old.unlink()  # one base at a time: each is several hundred MB
    return target


def wheels(source: Path, cache: Path, work: Path, say: Say) -> tuple[Path, Path]:
    """(the appliance's wheel built from `source`, the directory of its dependencies' wheels).
    Dependencies come from the cache when it has them all, else from PyPI (once)."""
    app_dir = work / "app-wheel"
    shutil.rmtree(app_dir, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "-q"]
    run(pip + ["--no-deps", "-w", str(app_dir), str(source)])
    built = sorted(app_dir.glob("*.whl"))
    if len(built) != 1:
        raise DiskError(f"pip wheel {source}: expected one wheel, found {[p.name for p in built]}")
    deps = cache / "wheels"
    deps.mkdir(parents=True, exist_ok=True)
    try:
        run(pip + ["--no-index", "--find-links", str(deps), "-w", str(deps), str(built[0])])
        say(f"appliance wheel {built[0].name}; dependencies from the cache ({deps})")
    except DiskError:
        say(f"appliance wheel {built[0].name}; downloading its dependencies from PyPI into {deps}")
        run(pip + ["-w", str(deps), str(built[0])])
    (deps / built[0].name).unlink(missing_ok=True)  # only dependencies are kept in the cache
    return built[0], deps


def chroot(root: Path, script: str, timeout: float = 900) -> str:
    """Run a shell script inside `root` with /proc, /sys and /dev, in namespaces of its own."""
    setup = ('mount -t proc proc "$0/proc" && mount -t sysfs sysfs "$0/sys" && mount --rbind /dev "$0/dev" '
             '&& exec chroot "$0" /bin/sh -ec "$1"')
    return run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "/bin/sh", "-c", setup,
                str(root), script], timeout=timeout)


def unpack(base: Path, root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", str(base), "-C", str(root)])


def install_appliance(recipe: NodeRecipe, root: Path, wheel: Path, deps: Path) -> None:
    """The venv, with the appliance and its dependencies installed offline by the image's pip."""
    host = f"python{sys.version_info.major}.{sys.version_info.minor}"
    image = os.readlink(root / "usr/bin/python3")
    if host != image:  # the dependency wheels were built by this Python, for its version
        raise DiskError(f"the image has {image} but this build runs on {host}: "
                        "build with Debian 12's python3")
    staged = root / WHEELS_IN_IMAGE.lstrip("/")
    shutil.copytree(deps, staged, dirs_exist_ok=True)
    shutil.copy2(wheel, staged / wheel.name)
    try:
        chroot(root, f"python3 -m venv {recipe.venv}\n"
                     f"{recipe.venv}/bin/pip install -q --no-index --no-cache-dir "
                     f"--disable-pip-version-check --find-links {WHEELS_IN_IMAGE} "
                     f"{WHEELS_IN_IMAGE}/{wheel.name}\n"
                     f"{recipe.venv}/bin/appliance --version\n")
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def configure(recipe: NodeRecipe, root: Path, uuid: str, enroll: Path) -> None:
    """The recipe's files, the enrollment image, host name, fstab, GRUB's config, units."""
    for source, target in sorted(recipe.files.items()):
        _copy(recipe.directory / source, root / target.lstrip("/"))
    shutil.copytree(enroll, root / "usr/share/appliance/enroll", dirs_exist_ok=True)
    (root / "etc/hostname").write_text(recipe.hostname + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{recipe.hostname}\n"
                                    "::1\tlocalhost ip6-localhost ip6-loopback\n")
    (root / "etc/fstab").write_text(f"UUID={uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
    for link in ("boot/vmlinuz", "boot/initrd.img"):
        if not (root / link).exists():
            raise DiskError(f"the base system has no /{link}: is linux-image-amd64 in the package list?")
    (root / "boot/grub").mkdir(parents=True, exist_ok=True)
    (root / "boot/grub/grub.cfg").write_text(grub_cfg(uuid, recipe.cmdline))
    chroot(root, f"systemctl enable {' '.join(recipe.enable)}\n"
                 + (f"systemctl disable {' '.join(recipe.disable)}\n" if recipe.disable else "")
                 + "ln -sf ../run/systemd/resolve/resolv.conf /etc/resolv.conf\n"
                 "rm -f /etc/ssh/ssh_host_*\n"
                 ": > /etc/machine-id\nrm -f /var/lib/dbus/machine-id\n"
                 "rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /tmp/* /var/tmp/*\n")


def add_vagrant_user(recipe: NodeRecipe, root: Path) -> None:
    """The Vagrant box's extra: user `vagrant` with the insecure key and passwordless sudo."""
    user = recipe.vagrant_user
    key = (recipe.directory / recipe.vagrant_key).read_text()
    chroot(root, f"id {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group {user}\n"
                 f"install -d -m 700 -o {user} -g {user} /home/{user}/.ssh\n"
                 f"cat > /home/{user}/.ssh/authorized_keys <<'KEY'\n{key.strip()}\nKEY\n"
                 f"chown {user}:{user} /home/{user}/.ssh/authorized_keys\n"
                 f"chmod 600 /home/{user}/.ssh/authorized_keys\n"
                 f"echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user}\n"
                 f"chmod 440 /etc/sudoers.d/{user}\n"
                 f"visudo -c -q -f /etc/sudoers.d/{user}\n")


def used_bytes(root: Path) -> int:
    """Bytes the tree takes on disk (du), to check it fits the root partition."""
    return int(run(["du", "-s", "-B1", "-x", str(root)]).split()[0])


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o755 if source.stat().st_mode & 0o111 else 0o644)
