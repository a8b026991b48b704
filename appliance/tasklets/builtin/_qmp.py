"""A small QMP client (QEMU Machine Protocol) for the power tasklet: stdlib only.

The tasklet worker runs with nothing but the standard library, so this is not the
`qemu.qmp` package: QMP is one JSON object per line over a unix socket. Connect, read
the greeting, `qmp_capabilities`, then `execute(command)`: events that arrive before
the answer are skipped; an error answer raises QmpError with QEMU's class and text.
"""

import json
import socket

MAX_LINE = 1 << 20


class QmpError(Exception):
    """QEMU answered a command with an error (or did not speak QMP)."""


class Qmp:
    """One QMP session on QEMU's `-qmp unix:PATH,server=on,wait=off` socket."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)  # OSError when nothing listens there
            self.file = self.sock.makefile("rwb")
            greeting = self._read()
            if "QMP" not in greeting:
                raise QmpError(f"{path}: not a QMP greeting: {str(greeting)[:100]}")
            self.execute("qmp_capabilities")
        except BaseException:
            self.sock.close()
            raise

    def execute(self, command: str, arguments: dict | None = None):
        """The `return` value of `command`; QmpError for an error answer."""
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        while True:
            answer = self._read()
            if "error" in answer:
                error = answer["error"]
                raise QmpError(f"{command}: {error.get('class')}: {error.get('desc')}")
            if "return" in answer:
                return answer["return"]

    def _read(self) -> dict:
        line = self.file.readline(MAX_LINE)
        if not line:
            raise ConnectionError(f"{self.path}: QEMU closed the connection")
        try:
            message = json.loads(line)
        except ValueError:
            raise QmpError(f"{self.path}: not JSON: {line[:100]!r}") from None
        if not isinstance(message, dict):
            raise QmpError(f"{self.path}: not a QMP message: {line[:100]!r}")
        return message

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
