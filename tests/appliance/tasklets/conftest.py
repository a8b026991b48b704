"""Helpers for the tasklet tests: write tasklet files into temporary directories."""

import textwrap
from pathlib import Path

import pytest


def write(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def tasklet_dir(tmp_path):
    """A directory and a function that writes `NAME.py` with the given source into it."""
    folder = tmp_path / "tasklets"
    folder.mkdir()

    def add(name: str, source: str) -> Path:
        return write(folder, f"{name}.py", source)

    add.dir = folder
    return add
