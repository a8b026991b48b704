"""Loading tasklet directories: good files load, each bad one is reported with its file and reason."""

import re

import pytest

from appliance.tasklets import BUILTIN, Engine, loader
from tests.appliance.tasklets.conftest import write

GOOD = {
    "minimal": ("TAGS = ['disk']\ndef main(params, ctx): pass\n",
                {"name": "minimal", "tags": ("disk",), "priority": 50, "has_match": False}),
    "everything": ('"""Check the disks."""\nNAME = "disk-check"\nTAGS = ("commission", "disk")\nPRIORITY = 5\n'
                   "def match(params, ctx): return True\ndef main(params, ctx): pass\n",
                   {"name": "disk-check", "tags": ("commission", "disk"), "priority": 5, "has_match": True,
                    "doc": "Check the disks."}),
    "uses a helper beside it": ("from _helper import VALUE\nTAGS = ['h']\ndef main(params, ctx): return VALUE\n",
                                {"tags": ("h",)}),
    "negative priority, extra args with defaults": (
        "TAGS = ['x']\nPRIORITY = -1\ndef main(params, ctx, extra=None): pass\n",
        {"priority": -1}),
}

BAD = {
    "syntax error": ("TAGS = ['x']\ndef main(params, ctx)\n    pass\n", "syntax error at line 2"),
    "raises at import": ("import os\nraise RuntimeError('no disk')\n",
                         "importing it raised RuntimeError: no disk at line 2"),
    "imports a missing module": ("import no_such_module_here\n",
                                 "importing it raised ModuleNotFoundError: No module named 'no_such_module_here'"),
    "exits at import": ("import sys\nsys.exit(4)\n", "importing it raised SystemExit: 4"),
    "no main": ("TAGS = ['x']\n", "main(params, ctx) is missing"),
    "no TAGS": ("def main(params, ctx): pass\n", "TAGS is missing"),
    "TAGS a string": ("TAGS = 'disk'\ndef main(params, ctx): pass\n", "TAGS 'disk' is not a non-empty list of strings"),
    "TAGS empty": ("TAGS = []\ndef main(params, ctx): pass\n", "TAGS [] is not a non-empty list of strings"),
    "TAGS not strings": ("TAGS = ['a', 3]\ndef main(params, ctx): pass\n", "is not a non-empty list of strings"),
    "PRIORITY a string": ("TAGS = ['x']\nPRIORITY = 'high'\ndef main(params, ctx): pass\n",
                          "PRIORITY 'high' is not a whole number"),
    "PRIORITY a bool": ("TAGS = ['x']\nPRIORITY = True\ndef main(params, ctx): pass\n",
                        "PRIORITY True is not a whole number"),
    "PRIORITY a float": ("TAGS = ['x']\nPRIORITY = 1.5\ndef main(params, ctx): pass\n",
                         "PRIORITY 1.5 is not a whole number"),
    "NAME not a string": ("NAME = 42\nTAGS = ['x']\ndef main(params, ctx): pass\n", "NAME 42 is not a name"),
    "NAME with a space": ("NAME = 'two words'\nTAGS = ['x']\ndef main(params, ctx): pass\n",
                          "NAME 'two words' is not a name"),
    "main not a function": ("TAGS = ['x']\nmain = 3\n", "main is not a function"),
    "main without arguments": ("TAGS = ['x']\ndef main(): pass\n", "main does not take (params, ctx)"),
    "match with one argument": ("TAGS = ['x']\ndef match(params): pass\ndef main(params, ctx): pass\n",
                                "match does not take (params, ctx)"),
}


def _file(case: str) -> str:
    return re.sub(r"\W", "_", case) + ".py"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    for name, (source, _) in {**GOOD, **BAD}.items():
        write(folder, _file(name), source)
    write(folder, "_helper.py", "VALUE = 7\n")  # a helper: not a tasklet
    write(folder, "README.txt", "not python")
    write(folder, ".hidden.py", "garbage(")
    tasklets, errors = loader.load([folder])
    return folder, tasklets, {e.file: e.reason for e in errors}


@pytest.mark.parametrize("case", GOOD)
def test_good_file_loads(loaded, case):
    folder, tasklets, _ = loaded
    expected = GOOD[case][1]
    tasklet = tasklets[expected.get("name", _file(case)[:-3])]
    assert tasklet.file == str(folder / _file(case))
    assert {k: getattr(tasklet, k) for k in expected} == expected


@pytest.mark.parametrize("case", BAD)
def test_bad_file_is_reported_with_file_and_reason(loaded, case):
    folder, _, errors = loaded
    assert BAD[case][1] in errors[str(folder / _file(case))]


def test_only_the_tasklet_files_are_considered(loaded):
    folder, tasklets, errors = loaded
    assert len(tasklets) == len(GOOD) and len(errors) == len(BAD)


def test_a_helper_beside_a_tasklet_is_importable_when_it_runs(loaded):
    folder, tasklets, errors = loaded
    [result] = Engine(tasklets).execute(["h"])
    assert (result.status, result.value) == ("ok", 7)


def test_a_hanging_or_exiting_import_costs_only_its_own_file(tasklet_dir, monkeypatch):
    monkeypatch.setattr(loader, "LOAD_TIMEOUT", 1.0)
    tasklet_dir("a_hangs", "while True:\n    pass\n")
    tasklet_dir("b_good", "TAGS = ['x']\ndef main(params, ctx): pass\n")
    tasklet_dir("c_exits", "import os\nprint('bye')\nos._exit(3)\n")
    tasklet_dir("d_good", "TAGS = ['x']\ndef main(params, ctx): pass\n")
    tasklets, errors = loader.load([tasklet_dir.dir])
    assert sorted(tasklets) == ["b_good", "d_good"]
    reasons = {e.file.rsplit("/", 1)[-1]: e.reason for e in errors}
    assert reasons == {"a_hangs.py": "importing it did not finish within 1 s",
                       "c_exits.py": "importing it ended the process (exit status 3; bye)"}


def test_same_name_twice_in_one_directory_is_refused(tasklet_dir):
    first = tasklet_dir("a", "NAME = 'dup'\nTAGS = ['x']\ndef main(params, ctx): return 'a'\n")
    second = tasklet_dir("b", "NAME = 'dup'\nTAGS = ['x']\ndef main(params, ctx): return 'b'\n")
    tasklets, errors = loader.load([tasklet_dir.dir])
    assert tasklets["dup"].file == str(first)
    assert [str(e) for e in errors] == [f"{second}: NAME 'dup' is already used by {first} in this directory"]


def test_a_later_directory_overrides_an_earlier_one_and_the_builtins(tmp_path):
    early = write(tmp_path / "early", "disk.py", "TAGS = ['old']\ndef main(params, ctx): return 'early'\n")
    late = write(tmp_path / "late", "disk.py", "TAGS = ['new']\ndef main(params, ctx): return 'late'\n")
    write(tmp_path / "late", "myping.py", "NAME = 'ping'\nTAGS = ['ping']\ndef main(params, ctx): return 'mine'\n")
    engine = Engine.load([early.parent, late.parent])
    assert engine.errors == []
    assert (engine.tasklets["disk"].file, engine.tasklets["disk"].overrides) == (str(late), str(early))
    assert engine.tasklets["ping"].overrides == str(BUILTIN / "ping.py")
    assert engine.select(["old"]) == []
    assert [r.value for r in engine.execute(["ping"])] == ["mine"]


def test_a_missing_directory_is_reported_and_the_others_load(tmp_path):
    write(tmp_path / "there", "t.py", "TAGS = ['x']\ndef main(params, ctx): pass\n")
    engine = Engine.load([tmp_path / "absent", tmp_path / "there"], builtin=False)
    assert list(engine.tasklets) == ["t"]
    assert [str(e) for e in engine.errors] == [f"{tmp_path / 'absent'}: is not a directory"]


def test_builtins_load_first_and_cleanly():
    engine = Engine.load([])
    assert engine.errors == []
    assert {"facts", "ping", "command"} <= set(engine.tasklets)
    assert all(t.file.startswith(str(BUILTIN)) for t in engine.tasklets.values())
    assert Engine.load([], builtin=False).tasklets == {}
