"""Making and removing XMPP accounts with the server's own admin command.

The command is run with the `[xmpp] ctl` prefix (default: the plain command on PATH), each
call bounded by CTL_TIMEOUT seconds (then its whole process group is killed):

- ejabberd: `ejabberdctl register USER HOST PASSWORD`, and `change_password` when the
  account exists already (a command of mod_admin_extra, which Debian's default
  ejabberd.yml loads), `unregister USER HOST`, `registered_users HOST`.
- prosody: `prosodyctl shell` against the running server (mod_admin_shell, in Debian's
  default modules): `user:create`, `user:password`, `user:delete`, `user:list`. Going
  through the server closes a deleted account's sessions; the offline `prosodyctl
  register/deluser` of Debian 12's prosody 0.12 would leave them logged in. Arguments
  go in as Lua string literals with every unusual byte escaped (`prosodyctl shell`
  would take a password starting with "-" for an option of its own).

`Ejabberd(prefix)` and `Prosody(prefix)` both offer the `Accounts` interface: `users(host)`,
`ensure(user, host, password)` (create, or set the password) and `remove(user, host)` (no
error if it is gone already). A failing command raises AccountError naming the command
(password masked) and what it printed (ejabberdctl prints its errors on stdout,
prosodyctl on both). Passwords travel as command arguments, visible in the process list
while the command runs: the node's only local users are its administrators.
"""

import os
import re
import shlex
import signal
import string
import subprocess
from collections.abc import Iterable, Sequence
from typing import Protocol

CTL_TIMEOUT = 30.0
_USER = re.compile(r"[a-z0-9][a-z0-9._-]{0,254}")
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
_LUA_PLAIN = set(string.ascii_letters + string.digits + " .@_-+/=:")


class AccountError(Exception):
    """An account could not be made or removed; the message says which command and why."""


class Accounts(Protocol):
    """What sync needs of an XMPP server's account admin."""

    def users(self, host: str) -> set[str]:
        """The user names (local parts) registered on `host`."""

    def ensure(self, user: str, host: str, password: str) -> None:
        """Make user@host exist with this password (create it, or set its password)."""

    def remove(self, user: str, host: str) -> None:
        """Make user@host not exist (no error if it did not)."""


def split_jid(jid: str) -> tuple[str, str]:
    """(user, host) of a bare JID, lower-cased; AccountError if it is not one we make."""
    user, sep, host = (jid or "").lower().partition("@")
    if not sep or not _USER.fullmatch(user) or not _HOST.fullmatch(host):
        raise AccountError(f"{jid!r} is not a bare JID USER@HOST (letters, digits, . _ -)")
    return user, host


class _Ctl:
    """One admin command (prefix + arguments), bounded in time, its output kept."""

    def __init__(self, prefix: Sequence[str], timeout: float):
        self.prefix, self.timeout = list(prefix), timeout

    def run(self, args: list[str], shown: list[str]) -> tuple[int, str]:
        """(exit status, stdout and stderr); `shown` is `args` with the password masked."""
        command = shlex.join(self.prefix + shown)
        try:
            proc = subprocess.Popen(self.prefix + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise AccountError(f"{command}: cannot run it: {exc.strerror}") from None
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise AccountError(f"{command}: no answer within {self.timeout:g} s") from None
        return proc.returncode, (out + err).decode(errors="replace").strip()

    def check(self, args: list[str], shown: list[str] | None = None, hint: str = "") -> str:
        status, text = self.run(args, shown or args)
        if status != 0:
            raise self.failed(shown or args, status, text, hint)
        return text

    def failed(self, shown: list[str], status: int, text: str, hint: str = "") -> AccountError:
        tail = " | ".join(text.splitlines()[-5:])[-600:] or "no output"
        return AccountError(f"{shlex.join(self.prefix + shown)} exited {status}: {tail}{hint}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=5)  # reaped; a daemon it left may hold the pipes: not waited for
    except subprocess.TimeoutExpired:
        proc.wait()


class Ejabberd:
    """Accounts through ejabberdctl (register, change_password, unregister, registered_users)."""

    def __init__(self, prefix: Sequence[str] | None = None, timeout: float = CTL_TIMEOUT):
        self.ctl = _Ctl(prefix or ["ejabberdctl"], timeout)

    def users(self, host: str) -> set[str]:
        return set(self.ctl.check(["registered_users", host]).split())

    def ensure(self, user: str, host: str, password: str) -> None:
        _check_password(password)
        status, text = self.ctl.run(["register", user, host, password], ["register", user, host, "***"])
        if status == 0:
            return
        if "already registered" not in text:
            raise self.ctl.failed(["register", user, host, "***"], status, text)
        self.ctl.check(["change_password", user, host, password], ["change_password", user, host, "***"],
                       hint=" (change_password needs mod_admin_extra in ejabberd.yml)")

    def remove(self, user: str, host: str) -> None:
        self.ctl.check(["unregister", user, host])


class Prosody:
    """Accounts through `prosodyctl shell` (user:create, user:password, user:delete, user:list)."""

    def __init__(self, prefix: Sequence[str] | None = None, timeout: float = CTL_TIMEOUT):
        self.ctl = _Ctl(prefix or ["prosodyctl"], timeout)

    def _shell(self, call: str, *args: str, secret: str | None = None) -> tuple[int, str, list[str]]:
        shown = ["shell", _lua_call(call, [("***" if a is secret else a) for a in args])]
        status, text = self.ctl.run(["shell", _lua_call(call, args)], shown)
        return status, text, shown

    def users(self, host: str) -> set[str]:
        status, text, shown = self._shell("user:list", host)
        if status != 0:
            raise self.ctl.failed(shown, status, text)
        suffix = "@" + host
        return {line[:-len(suffix)] for line in text.splitlines() if line.endswith(suffix)}

    def ensure(self, user: str, host: str, password: str) -> None:
        _check_password(password)
        status, text, shown = self._shell("user:create", f"{user}@{host}", password, secret=password)
        if status != 0 and "User exists" in text:
            status, text, shown = self._shell("user:password", f"{user}@{host}", password, secret=password)
        if status != 0:
            raise self.ctl.failed(shown, status, text)

    def remove(self, user: str, host: str) -> None:
        status, text, shown = self._shell("user:delete", f"{user}@{host}")
        if status != 0 and "No such user" not in text:
            raise self.ctl.failed(shown, status, text)


def _lua_call(call: str, args: Iterable[str]) -> str:
    """`call("a", "b")` with every argument a Lua string literal (byte escapes beyond the plain)."""
    def literal(text: str) -> str:
        return '"' + "".join(c if c in _LUA_PLAIN else "".join(f"\\{b:03d}" for b in c.encode())
                             for c in text) + '"'
    return f"{call}({', '.join(map(literal, args))})"


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password or "\0" in password:
        raise AccountError("a password must be non-empty text without NUL characters")
