"""The rules of ../shared/STYLE.md that a machine can check."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("appliance", "netservices", "agent")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules("netservices"), ids=lambda p: str(p.relative_to(ROOT)))
def test_netservices_never_imports_appliance(path):
    assert not {n for n in _imports(path) if n.split(".")[0] == "appliance"}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_says_what_it_is_for(package):
    missing = [str(p.relative_to(ROOT)) for p in _modules(package)
               if p.stat().st_size and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_under_400_lines(package):
    long = {str(p.relative_to(ROOT)): n for p in _modules(package)
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *PACKAGES, "tests", "bench"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
