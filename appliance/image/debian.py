"""Debian packages for an image, fetched and unpacked without installing anything.

`apt-get download` puts the .deb in CACHE/debs and `dpkg-deb -x` unpacks it into
CACHE/root/<deb file name>/, both kept for the next build: a rebuild after the first
download only reads the cache. Nothing is installed and nothing outside CACHE is written.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path


class PackageError(Exception):
    """A package could not be fetched or unpacked; the message says which and why."""


@dataclass(frozen=True)
class Unpacked:
    """One package, unpacked."""

    name: str
    version: str
    root: Path


def fetch(package: str, cache: Path, refresh: bool = False) -> Unpacked:
    """The package `package`, downloaded (unless cached, or `refresh`) and unpacked."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if refresh or not found:
        for old in found:
            old.unlink()
        _run(["apt-get", "download", "-q", package], debs, _hint(package))
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise PackageError(f"apt-get download {package}: no .deb appeared in {debs}")
    deb = found[-1]
    root = cache / "root" / deb.stem
    if not (root / ".unpacked").exists():
        root.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb), str(root)], cache, "")
        (root / ".unpacked").touch()
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], cache, "").strip()
    return Unpacked(package, version, root)


METAPACKAGES = ("linux-image-amd64",)


def resolve(package: str) -> str:
    """The package a metapackage stands for now (its first linux-image-* dependency);
    any other name is returned as it is."""
    if package not in METAPACKAGES:
        return package
    out = _run(["apt-cache", "depends", package], Path("/"), "; run apt-get update?")
    for line in out.splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise PackageError(f"apt-cache depends {package}: names no linux-image package; run apt-get update?")


def _hint(package: str) -> str:
    if package.startswith("linux-image-"):
        return ("; is the pinned kernel still in Debian? `apt-cache depends linux-image-amd64` "
                "names the current one (then edit image/enroll/recipe.toml), or run apt-get update")
    return "; run apt-get update?"


def _run(cmd: list[str], cwd: Path, hint: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackageError(f"{' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["failed"]
        raise PackageError(f"{' '.join(cmd)}: {detail[0]}{hint}")
    return proc.stdout
