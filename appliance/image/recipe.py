"""An image recipe: `recipe.toml` plus the files it names, and the hash that identifies a build.

The hash covers the recipe file, every file it copies into the image (names and bytes)
and the builder's format version, so editing the init script or the module list makes
the next build rebuild, and nothing else does.
"""

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

BUILDER_VERSION = 1
"""Bump when the builder changes what it puts in an image: old builds then rebuild."""


def _recipes() -> Path:
    """`image/` of the source tree (a checkout or an editable install), else the copy that
    the wheel carries as `appliance/image/recipes/` (see pyproject.toml)."""
    source = Path(__file__).resolve().parents[2] / "image"
    return source if (source / "enroll" / "recipe.toml").is_file() else Path(__file__).with_name("recipes")


RECIPES = _recipes()


@dataclass
class BuildResult:
    """What an image build did."""

    output: Path
    info: dict
    built: bool
    """False: the output was already built from the same inputs and was left alone."""


class RecipeError(Exception):
    """The recipe cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Recipe:
    """What an enrollment image is made of."""

    directory: Path
    kernel_package: str
    busybox_package: str
    busybox_path: str
    modules: tuple[str, ...]
    files: dict[str, str]  # source file in the recipe directory -> path inside the image

    def hash(self) -> str:
        """sha256 of the recipe, the files it copies and the builder version."""
        return files_hash(f"builder {BUILDER_VERSION}", self.directory, ["recipe.toml", *sorted(self.files)])


def load(directory: str | Path = RECIPES / "enroll") -> Recipe:
    """Read `directory/recipe.toml`, or raise `RecipeError` naming what is wrong."""
    directory = Path(directory)
    path = directory / "recipe.toml"
    data = read_toml(path)
    try:
        recipe = Recipe(
            directory=directory,
            kernel_package=_str(data["kernel"]["package"]),
            busybox_package=_str(data["busybox"]["package"]),
            busybox_path=_str(data["busybox"]["path"]),
            modules=tuple(_str(m) for m in data["modules"]["load"]),
            files={_str(k): _str(v) for k, v in data["files"].items()},
        )
    except KeyError as exc:
        raise RecipeError(f"{path}: missing key {exc.args[0]}") from None
    except TypeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    missing = [name for name in recipe.files if not (directory / name).is_file()]
    if missing:
        raise RecipeError(f"{path}: [files] names missing files: {', '.join(missing)}")
    return recipe


def read_toml(path: Path) -> dict:
    """The tables of the TOML file `path`, or RecipeError naming it and what is wrong."""
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: {exc}") from None


def files_hash(header: str, directory: Path, names: list[str]) -> str:
    """sha256 of `header` and each named file of `directory` (name, length, bytes)."""
    digest = hashlib.sha256(f"{header}\n".encode())
    for name in names:
        data = (directory / name).read_bytes()
        digest.update(f"{name} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def _str(value) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value
