"""Who may call what: reads open on the management network (if configured), writes need credentials.

Credentials come from the HTTP Authorization header (Basic user:password, or Bearer
token) on every transport; AMF clients may also send them in the envelope's
"Credentials" header. Secrets are compared in constant time.
"""

import base64
import binascii
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    token: str = ""


def from_header(value: str | None) -> Credentials | None:
    """Credentials from an Authorization header value; None when absent or unreadable."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer" and rest:
        return Credentials(token=rest.strip())
    if scheme.lower() == "basic":
        try:
            user, sep, password = base64.b64decode(rest, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return Credentials(username="\0")  # present but garbled: never matches
        return Credentials(username=user, password=password) if sep else Credentials(username="\0")
    return Credentials(username="\0")


def _same(a: str, b: str) -> bool:
    return bool(b) and hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Guard:
    """The [appserver] access rules. With no secret configured, nothing may write."""

    read_open: bool = True
    token: str = ""
    username: str = ""
    password: str = ""
    enroll_token: str = ""

    def valid(self, cred: Credentials) -> bool:
        return _same(cred.token, self.token) or (
            _same(cred.username, self.username) and _same(cred.password, self.password))

    def allows(self, writes: bool, cred: Credentials | None, enroll: bool = False) -> bool:
        """`enroll` calls also accept the enrollment token (and only they do)."""
        if cred is not None:
            return self.valid(cred) or (enroll and _same(cred.token, self.enroll_token))
        return self.read_open and not writes
