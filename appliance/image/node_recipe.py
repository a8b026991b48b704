"""The node image recipe: `image/node/recipe.toml` plus the files it names, and its two hashes.

`base_hash()` covers only what mmdebstrap gets (suite, sources, packages, path filters):
it names the cached base-system tarball, so editing a unit file does not download
Debian again. `hash()` covers the whole recipe directory's files that go into the image.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from appliance.image import recipe as recipes
from appliance.image.recipe import RecipeError

BUILDER_VERSION = 1
"""Bump when the builder changes what it puts in an image: old builds then rebuild."""


@dataclass(frozen=True)
class NodeRecipe:
    """What the node image is made of."""

    directory: Path
    suite: str
    variant: str
    sources: tuple[str, ...]
    packages: tuple[str, ...]
    path_exclude: tuple[str, ...]
    path_include: tuple[str, ...]
    size_gib: int
    esp_mib: int
    hostname: str
    cmdline: str
    venv: str
    enable: tuple[str, ...]
    disable: tuple[str, ...]
    files: dict[str, str]  # file in the recipe directory -> absolute path inside the image
    vagrant_user: str
    vagrant_key: str
    vagrantfile: str

    def base_hash(self) -> str:
        """sha256 of what the base system is built from (the mmdebstrap call)."""
        parts = [self.suite, self.variant, *self.sources, "|", *self.packages, "|",
                 *self.path_exclude, "|", *self.path_include]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def hash(self) -> str:
        """sha256 of recipe.toml, every file it copies and the builder version."""
        names = ["recipe.toml", *sorted(self.files), self.vagrant_key, self.vagrantfile]
        return recipes.files_hash(f"node builder {BUILDER_VERSION}", self.directory, names)


def load(directory: str | Path | None = None) -> NodeRecipe:
    """Read `directory/recipe.toml` (default: image/node), or raise `RecipeError` naming what is wrong."""
    directory = Path(directory) if directory is not None else recipes.RECIPES / "node"
    path = directory / "recipe.toml"
    data = recipes.read_toml(path)
    try:
        recipe = _from_tables(directory, data)
    except KeyError as exc:
        raise RecipeError(f"{path}: missing key {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{path}: {exc}") from None
    named = [*recipe.files, recipe.vagrant_key, recipe.vagrantfile]
    missing = [name for name in named if not (directory / name).is_file()]
    if missing:
        raise RecipeError(f"{path}: names missing files: {', '.join(missing)}")
    return recipe


def _from_tables(directory: Path, data: dict) -> NodeRecipe:
    debian, disk, systemd, vagrant = data["debian"], data["disk"], data["systemd"], data["vagrant"]
    files = {_str(k): _str(v) for k, v in data["files"].items()}
    relative = [target for target in files.values() if not target.startswith("/")]
    if relative:
        raise ValueError(f"[files] targets must be absolute paths: {', '.join(relative)}")
    return NodeRecipe(
        directory=directory,
        suite=_str(debian["suite"]),
        variant=_str(debian["variant"]),
        sources=_strs(debian["sources"]),
        packages=_strs(debian["packages"]),
        path_exclude=_strs(debian.get("path_exclude", [])),
        path_include=_strs(debian.get("path_include", [])),
        size_gib=_int(disk["size_gib"], 1, 64),
        esp_mib=_int(disk["esp_mib"], 64, 512),  # FAT32, 512-byte clusters: 64 MiB at least
        hostname=_str(disk["hostname"]),
        cmdline=_str(disk["cmdline"]),
        venv=_str(data["appliance"]["venv"]),
        enable=_strs(systemd["enable"]),
        disable=_strs(systemd.get("disable", [])),
        files=files,
        vagrant_user=_str(vagrant["user"]),
        vagrant_key=_str(vagrant["key"]),
        vagrantfile=_str(vagrant["vagrantfile"]),
    )


def _str(value) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _strs(value) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return tuple(_str(v) for v in value)


def _int(value, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
    return value
