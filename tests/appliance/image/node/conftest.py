"""The node image, built once per test session into /tmp/pylabs-image-cache and kept between sessions.

The first session runs mmdebstrap (a few minutes); later ones find the base system
tarball, the dependency wheels and the enrollment image cached, and the image itself up
to date unless the recipe or the appliance's code changed.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.image import node, node_recipe
from tests.appliance.image.conftest import CACHE, PACKAGES
from tests.fixtures.tools import require_tool

STATE = CACHE / "state"  # [node] state_dir of the config the command is given
NODE_CACHE = node.default_cache(str(STATE))
NODE_OUT = CACHE / "node-out"


SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache",
                              "build", "dist", "*.egg-info")


@pytest.fixture(scope="session")
def checkout(tmp_path_factory) -> Path:
    """The checkout as it is when the session starts: the image is built from this copy, so
    that edits made in the tree while the tests run do not change what "up to date" means."""
    return shutil.copytree(node.SOURCE, tmp_path_factory.mktemp("checkout") / "src", ignore=SKIP, symlinks=True)


def build(checkout: Path, say) -> node.Result:
    """Build (or find up to date) the test session's node image from `checkout`."""
    return node.build(NODE_OUT, NODE_CACHE, source=checkout, node=node_recipe.load(checkout / "image/node"),
                      packages=PACKAGES, say=say)


@pytest.fixture(scope="session")
def node_image(checkout) -> node.Result:
    """The built node image (`.output` holds the raw.zst, qcow2, box and build.json)."""
    lines: list[str] = []
    try:
        result = build(checkout, lines.append)
    except node.BuildError as exc:
        pytest.fail(f"the node image cannot be built: {exc}")
    print("\n".join(lines))
    return result


@pytest.fixture(scope="session")
def node_raw(node_image, tmp_path_factory) -> Path:
    """The raw disk, decompressed from pylabs-node.raw.zst (sparse)."""
    raw = tmp_path_factory.mktemp("raw") / "node.raw"
    subprocess.run([require_tool("zstd"), "-q", "-d", "--sparse", "-o", str(raw),
                    str(node_image.output / "pylabs-node.raw.zst")], check=True, timeout=300)
    return raw
