"""The appliance's wheel carries what it needs at run time, and works installed from it alone.

An editable install finds the image recipes, the OSIS IDL and the built-in tasklets in
the checkout; the node image installs the wheel, which must carry them.
"""

import os
import subprocess
import sys
import zipfile

import pytest

from appliance.image import node_recipe, recipe
from appliance.image.node import SOURCE


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                    "-w", str(out), str(SOURCE)], check=True, timeout=300)
    (built,) = out.glob("pylabs_appliance-*.whl")
    return built


def _runtime_files() -> list[str]:
    """Files the appliance reads at run time, as paths inside the wheel."""
    enroll, node = recipe.load(), node_recipe.load()
    files = ["appliance/osis/domain.thrift", "appliance/tasklets/worker.py", "appliance/image/recipes/README.md",
             "appliance/image/recipes/enroll/recipe.toml", "appliance/image/recipes/node/recipe.toml"]
    files += [f"appliance/image/recipes/enroll/{name}" for name in enroll.files]
    files += [f"appliance/image/recipes/node/{name}" for name in [*node.files, node.vagrant_key, node.vagrantfile]]
    files += [f"appliance/tasklets/builtin/{p.name}" for p in (SOURCE / "appliance/tasklets/builtin").glob("*.py")]
    return files


def test_wheel_carries_recipes_idl_and_builtin_tasklets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in _runtime_files() if name not in names]
    assert missing == []
    assert {"netservices/__init__.py", "agent/__init__.py", "appliance/cli.py"} <= names
    init = zipfile.ZipFile(wheel).getinfo("appliance/image/recipes/enroll/init")
    assert (init.external_attr >> 16) & 0o111  # the initramfs /init stays executable


def test_installed_from_the_wheel_alone_it_finds_its_files(wheel, tmp_path):
    """Installed into a directory outside the checkout, run from elsewhere, without the
    editable install on sys.path: recipes, IDL and tasklets come from the wheel."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, timeout=300)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    code = ("import sys; sys.path[:0] = [sys.argv[1]] + sys.argv[2:]\n"
            "from appliance.image import recipe, node_recipe\n"
            "from appliance.osis import schema\n"
            "from appliance.tasklets import engine\n"
            "print(recipe.RECIPES); recipe.load(); node_recipe.load()\n"
            "print(schema.IDL.is_file(), sorted(p.stem for p in engine.BUILTIN.glob('*.py')))\n")
    # -S: no site-packages .pth files, so the checkout's editable install is not on the path
    result = subprocess.run([sys.executable, "-S", "-c", code, str(target), *deps], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    where, found = result.stdout.splitlines()
    assert where == str(target / "appliance/image/recipes")
    assert found.startswith("True [") and "'facts'" in found and "'ping'" in found
