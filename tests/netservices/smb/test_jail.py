"""The path jail: names that stay in the share resolve, every other one is refused."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netservices.smb import jail


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("jail")
    share = base / "share"
    (share / "dir").mkdir(parents=True)
    (share / "dir" / "f").write_text("f")
    (base / "share2").mkdir()
    (base / "share2" / "s").write_text("s")
    os.symlink("../share2", share / "out")
    os.symlink("dir", share / "in")
    return share


INSIDE = {
    "plain": ("dir\\f", "dir/f"),
    "leading separator": ("\\dir\\f", "dir/f"),
    "forward slashes": ("dir/f", "dir/f"),
    "dot dot that stays inside": ("dir\\..\\dir\\f", "dir/f"),
    "the root itself": ("", ""),
    "symlink inside": ("in\\f", "dir/f"),
    "missing file inside": ("dir\\new", "dir/new"),
}
OUTSIDE = {
    "parent": "..\\share2\\s",
    "sibling with the share as prefix": "..\\share2",
    "deeper dot dot": "dir\\..\\..\\share2\\s",
    "UNC": "\\\\host\\share\\f",
    "double slash": "//etc/passwd",
    "drive letter": "C:\\Windows",
    "stream": "dir\\f:stream",
    "NUL": "dir\\f\x00.txt",
    "symlink out": "out\\s",
}


@pytest.mark.parametrize("name,want", INSIDE.values(), ids=INSIDE.keys())
def test_inside(root, name, want):
    assert jail.resolve(str(root), name) == os.path.realpath(os.path.join(root, want))


@pytest.mark.parametrize("name", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_outside(root, name):
    assert jail.resolve(str(root), name) is None


@given(st.text(alphabet="ab.\\/:", max_size=24))
def test_any_name_resolves_inside_or_is_refused(name):
    root = os.path.realpath("/tmp")
    target = jail.resolve(root, name)
    assert target is None or os.path.commonpath((root, target)) == root


@pytest.mark.parametrize("pattern,ok", [("*", True), ("*.wim", True), ("boot.wim", True), (".", True),
                                        ("..", False), ("../*", False), ("..\\*", False), ("a:b", False),
                                        ("", False)])
def test_search_patterns(pattern, ok):
    assert jail.is_pattern(pattern) is ok
