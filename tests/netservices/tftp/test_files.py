"""What a client may read: path cleaning, the read-only directory, rendered files."""

import io

import pytest

from netservices.tftp.files import Aliases, Chain, Directory, Refused, Rendered, clean_path

CLIENT = ("10.0.0.5", 2000)

REFUSED = {
    "dot-dot": "../secret",
    "dot-dot inside": "boot/../../secret",
    "dot-dot alone": "..",
    "dot-dot with backslashes": "..\\secret",
    "absolute": "/etc/passwd",
    "absolute with backslash": "\\etc\\passwd",
    "NUL byte": "one\0../../secret",
    "empty": "",
    "only dots and slashes": "./",
    "symlink out of the root": "link-out",
    "symlink to an absolute path": "link-abs",
    "symlink to a sibling sharing the root's prefix": "link-sibling/file",
    "a FIFO": "fifo",
    "a directory": "boot",
}


@pytest.mark.parametrize("path", REFUSED.values(), ids=REFUSED.keys())
def test_directory_refuses_escapes(tree, path):
    with pytest.raises(Refused):
        Directory(tree).open(path, CLIENT)


SERVED = {
    "plain": ("one", "one"),
    "nested": ("boot/sub/kernel", "boot/sub/kernel"),
    "dot segments and double slashes": ("./boot//sub/./kernel", "boot/sub/kernel"),
    "windows backslashes": ("boot\\sub\\kernel", "boot/sub/kernel"),
    "symlink inside the root": ("link-in", "boot/sub/kernel"),
}


@pytest.mark.parametrize("path,real", SERVED.values(), ids=SERVED.keys())
def test_directory_serves_files_inside(tree, path, real):
    with Directory(tree).open(path, CLIENT) as f:
        assert f.read() == (tree / real).read_bytes()


def test_missing_file_is_none(tree):
    assert Directory(tree).open("nope", CLIENT) is None
    assert Directory(tree).open("one/below-a-file", CLIENT) is None


def test_clean_path_normalizes():
    assert clean_path("a//b/./c") == "a/b/c"
    assert clean_path("a\\b") == "a/b"


def test_rendered_and_chain(tree):
    rendered = Rendered({r"cfg/(?P<mac>[0-9a-f-]+)": lambda client, mac: f"{client[0]} {mac}".encode()})
    rendered.add(r"stream", lambda client: io.BytesIO(b"streamed"))
    files = Chain(rendered, Directory(tree), Aliases({"alias": str(tree / "one")}))
    assert files.open("cfg/aa-bb", CLIENT) == b"10.0.0.5 aa-bb"
    assert files.open("stream", CLIENT).read() == b"streamed"
    assert files.open("one", CLIENT).read() == (tree / "one").read_bytes()
    assert files.open("alias", CLIENT).read() == (tree / "one").read_bytes()
    assert files.open("cfg/", CLIENT) is None
