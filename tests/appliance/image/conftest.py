"""The enrollment image, built once per test session and kept between sessions.

Built into /tmp/pylabs-image-cache/enroll-HASH (HASH: the recipe's), with downloaded
packages under /tmp/pylabs-image-cache/packages: the first session downloads and builds
(about 10 s), later ones find the build up to date and take no time.
"""

from pathlib import Path

import pytest

from appliance.image import enroll, recipe

CACHE = Path("/tmp/pylabs-image-cache")
PACKAGES = CACHE / "packages"


@pytest.fixture(scope="session")
def enroll_image() -> enroll.Result:
    """The built enrollment image (`.output` holds vmlinuz, initrd.img, build.json)."""
    enroll_recipe = recipe.load()
    return enroll.build(enroll_recipe, CACHE / f"enroll-{enroll_recipe.hash()[:12]}", PACKAGES)
