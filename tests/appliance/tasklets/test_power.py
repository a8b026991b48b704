"""The power tasklet against a real QEMU over QMP: status, on, off, reset, start from a
command line. QEMU runs under TCG with no disk and stays in its firmware; a second QMP
socket lets the test watch the events each action causes."""

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from appliance.lab.netns import alive
from appliance.tasklets import Engine
from tests.fixtures.servers import kill_group, wait_for
from tests.fixtures.tools import require_tool

TIMEOUT = 20


@pytest.fixture(scope="module")
def engine():
    return Engine.load([], timeout=30)


def power(engine, **params):
    [result] = engine.execute(["power"], params)
    return result


def qemu_argv(folder: Path, paused: bool = False) -> list[str]:
    return [require_tool("qemu-system-x86_64"), "-machine", "accel=tcg", "-m", "64", "-nodefaults",
            "-nographic", *(["-S"] if paused else []),
            "-qmp", f"unix:{folder / 'qmp.sock'},server=on,wait=off",
            "-qmp", f"unix:{folder / 'watch.sock'},server=on,wait=off"]


class Watch:
    """A QMP session of the test's own, reading the events QEMU sends."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")
        self.file.readline()  # the greeting
        self.file.write(b'{"execute": "qmp_capabilities"}\n')
        self.file.flush()
        assert json.loads(self.file.readline()) == {"return": {}}

    def event(self) -> dict:
        """The next event (TimeoutError when none comes)."""
        while True:
            message = json.loads(self.file.readline())
            if "event" in message:
                return message


class Qemu:
    """A QEMU process in a short temp dir (unix socket paths are short), stopped by PID."""

    def __init__(self, paused: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix="qmp-"))
        self.socket = str(self.dir / "qmp.sock")
        log = open(self.dir / "qemu.log", "wb")
        self.proc = subprocess.Popen(qemu_argv(self.dir, paused), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        assert wait_for(lambda: (self.dir / "watch.sock").exists(), TIMEOUT, proc=self.proc), self.log()
        self.watch = Watch(self.dir / "watch.sock")

    def log(self) -> str:
        return (self.dir / "qemu.log").read_text(errors="replace")

    def stop(self) -> None:
        self.watch.sock.close()
        self.proc.send_signal(signal.SIGTERM)
        kill_group(self.proc, timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def qemu():
    machine = Qemu()
    yield machine
    machine.stop()


@pytest.fixture
def paused_qemu():
    machine = Qemu(paused=True)
    yield machine
    machine.stop()


def test_status_of_a_running_machine(engine, qemu):
    result = power(engine, action="status", socket=qemu.socket)
    assert result.status == "ok", result.error
    assert result.value == {"driver": "qemu", "action": "status", "state": "on", "detail": "running",
                            "changed": False}


def test_on_starts_a_paused_machine_once(engine, paused_qemu):
    assert power(engine, action="status", socket=paused_qemu.socket).value["state"] == "paused"
    result = power(engine, action="on", socket=paused_qemu.socket)
    assert (result.value["state"], result.value["detail"], result.value["changed"]) == ("on", "running", True)
    assert paused_qemu.watch.event()["event"] == "RESUME"
    assert power(engine, action="on", socket=paused_qemu.socket).value["changed"] is False


def test_reset_resets_the_machine(engine, qemu):
    result = power(engine, action="reset", socket=qemu.socket)
    assert (result.status, result.value["state"], result.value["changed"]) == ("ok", "on", True)
    event = qemu.watch.event()
    assert (event["event"], event["data"]["reason"]) == ("RESET", "host-qmp-system-reset")


def test_off_presses_the_power_button_which_the_firmware_ignores(engine, qemu):
    result = power(engine, action="off", socket=qemu.socket, wait=1)
    assert qemu.watch.event()["event"] == "POWERDOWN"
    assert (result.status, result.value["state"], result.value["changed"]) == ("ok", "on", True)
    assert qemu.proc.poll() is None


def test_forced_off_ends_qemu_and_a_second_off_changes_nothing(engine, qemu):
    result = power(engine, action="off", socket=qemu.socket, force=True)
    assert (result.status, result.value["state"], result.value["changed"]) == ("ok", "off", True)
    assert qemu.proc.wait(timeout=TIMEOUT) == 0
    again = power(engine, action="off", socket=qemu.socket, force=True)
    assert (again.value["state"], again.value["changed"]) == ("off", False)
    assert power(engine, action="status", socket=qemu.socket).value["state"] == "off"


def test_on_starts_qemu_from_its_command_line(engine, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="qmp-"))
    sock = str(folder / "qmp.sock")
    result = power(engine, action="on", socket=sock, command=qemu_argv(folder))
    try:
        assert result.status == "ok", result.error + result.output
        assert (result.value["state"], result.value["changed"]) == ("on", True)
        assert alive(result.value["pid"]) and sock in Path(f"/proc/{result.value['pid']}/cmdline").read_text()
        assert power(engine, action="status", socket=sock).value["detail"] == "running"  # it outlived the job
    finally:
        power(engine, action="off", socket=sock, force=True)
        shutil.rmtree(folder, ignore_errors=True)
    deadline = time.monotonic() + TIMEOUT
    while alive(result.value["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(result.value["pid"])


FAILURES = {
    "reset when off": ({"action": "reset", "socket": "/nonexistent/qmp.sock"}, "nothing answers on /nonexistent"),
    "on without a command": ({"action": "on", "socket": "/nonexistent/qmp.sock"}, 'give "command"'),
    "command that cannot run": ({"action": "on", "socket": "/nonexistent/qmp.sock",
                                 "command": ["/nonexistent/qemu"]}, "cannot start /nonexistent/qemu"),
    "command that ends at once": ({"action": "on", "socket": "/nonexistent/qmp.sock",
                                   "command": ["sh", "-c", "exit 3"]}, "exit status 3) did not open"),
    "unknown action": ({"action": "boot", "socket": "/x"}, '"action" must be one of on, off, reset, status'),
    "unknown driver": ({"action": "on", "driver": "xen"}, '"driver" must be "qemu" or "libvirt"'),
    "no socket": ({"action": "status"}, '"socket" must be a non-empty string'),
    "negative wait": ({"action": "off", "socket": "/x", "wait": -1}, '"wait" must be seconds'),
}


@pytest.mark.parametrize("params, reason", FAILURES.values(), ids=FAILURES.keys())
def test_what_cannot_be_done_fails_with_the_reason(engine, params, reason):
    result = power(engine, **params)
    assert result.status == "failed" and reason in result.error.strip().splitlines()[-1]


def test_a_socket_that_is_not_qmp_is_reported(engine):
    path = Path(tempfile.mkdtemp(prefix="qmp-")) / "not-qmp.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def answer():
        conn, _ = server.accept()
        conn.sendall(b"220 this is an SMTP server\r\n")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        result = power(engine, action="status", socket=str(path))
    finally:
        thread.join(TIMEOUT)
        server.close()
        shutil.rmtree(path.parent, ignore_errors=True)
    assert result.status == "failed"
    assert f"QMP socket {path}" in result.error and "not JSON" in result.error
