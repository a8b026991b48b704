"""Settings of the smb service: the [smb] table of the appliance config.

Shares are a list of tables (`[[smb.shares]]`), users another (`[[smb.users]]`). Checks
that span keys (a share naming an unknown user, two shares with one name) are made here so
that a bad config stops start-up naming the key.
"""

import os
import re
from ipaddress import IPv4Address
from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool, StrictStr, model_validator
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, ListenAddress, Port, SettingError

# MS-FSCC 2.1.6 forbids these in share names; IPC$ is the server's own.
_SHARE_NAME = re.compile(r'[^\x00-\x1f"\\/\[\]:|<>+=;,*?]{1,80}')
_USER_NAME = re.compile(r'[^\x00-\x1f"\\/\[\]:|<>+=;,*?@]{1,64}')
_NETBIOS = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")


def _share_name(value: str) -> str:
    if not _SHARE_NAME.fullmatch(value) or value.upper() == "IPC$":
        raise ValueError('is not a share name (1-80 characters, none of \\/:*?"<>|[]+=;, and not IPC$)')
    return value


def _user_name(value: str) -> str:
    if not _USER_NAME.fullmatch(value):
        raise ValueError("is not a user name (1-64 characters, no \\/:*?@ and the like)")
    return value


def _password(value: str) -> str:
    if not value:
        raise ValueError("is empty: set a password")
    return value


def _absolute(value: str) -> str:
    if not os.path.isabs(value):
        raise ValueError("is not an absolute path")
    return os.path.normpath(value)


def _netbios(value: str) -> str:
    if not _NETBIOS.fullmatch(value):
        raise ValueError("is not a NetBIOS name (letters, digits, hyphens; 15 at most)")
    return value


ShareName = Annotated[StrictStr, AfterValidator(_share_name)]
UserName = Annotated[StrictStr, AfterValidator(_user_name)]
AbsolutePath = Annotated[StrictStr, AfterValidator(_absolute)]
NetbiosName = Annotated[StrictStr, AfterValidator(_netbios)]


@dataclass(frozen=True, config=SECTION)
class Share:
    """One shared directory."""

    name: ShareName
    """Share name clients ask for (\\\\APPLIANCE\\NAME); compared without case."""
    path: AbsolutePath
    """Directory shared; nothing outside it is ever served (no "..", absolute paths or symlinks out)."""
    comment: StrictStr = ""
    """Description shown in share lists."""
    read_only: StrictBool = True
    """Refuse every change (create, write, rename, delete) with ACCESS_DENIED."""
    guest: StrictBool = True
    """Let clients without credentials (guest or anonymous) connect."""
    users: tuple[UserName, ...] = ()
    """Users of [[smb.users]] who may connect; empty: every one of them."""



@dataclass(frozen=True, config=SECTION)
class User:
    """An account for NTLM authentication."""

    name: UserName
    """User name; compared without case, as Windows does."""
    password: Annotated[StrictStr, AfterValidator(_password)]
    """Its password."""



@dataclass(frozen=True, config=SECTION)
class SmbConfig:
    """SMB2 shares of install media (Windows and WinPE installs, wimboot), read-only by default."""

    enabled: StrictBool = False
    """Serve SMB."""
    listen: ListenAddress = IPv4Address("127.0.0.1")
    """Address to answer on."""
    port: Port = 445
    """TCP port to serve on (Windows clients only use 445; tests use a private one)."""
    server_name: NetbiosName = "APPLIANCE"
    """NetBIOS name the server gives in NTLM exchanges."""
    workgroup: NetbiosName = "WORKGROUP"
    """Workgroup (NetBIOS domain) the server gives in NTLM exchanges."""
    shares: tuple[Share, ...] = ()
    """Shared directories, e.g. [{ name = "winpe", path = "/srv/winpe" }]."""
    users: tuple[User, ...] = ()
    """Accounts, e.g. [{ name = "installer", password = "…" }]; shares without guest need one."""
    max_connections: Annotated[int, Field(strict=True, ge=1, le=10000)] = 256
    """Clients served at once; further connections are closed at once."""

    @model_validator(mode="after")
    def _consistent(self):
        names = [s.name.upper() for s in self.shares]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise SettingError(f"shares[{i}].name", f'"{self.shares[i].name}" is shared twice')
        users = [u.name.lower() for u in self.users]
        for i, user in enumerate(users):
            if user in users[:i]:
                raise SettingError(f"users[{i}].name", f'"{self.users[i].name}" is listed twice')
        for i, share in enumerate(self.shares):
            for user in share.users:
                if user.lower() not in users:
                    raise SettingError(f"shares[{i}].users", f'"{user}" is not in smb.users')
            if not share.guest and not self.users:
                raise SettingError(f"shares[{i}].guest",
                                   "is false but smb.users is empty: nobody could connect")
        return self
