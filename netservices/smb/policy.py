"""Who may log on, connect to which share, and open what: decisions without I/O.

impacket grants a guest session to anyone without a user name even when credentials
are configured, and opens files for writing on a share it calls read-only when the
client asks; these rules are what the server applies instead.
"""

from dataclasses import dataclass

from netservices.smb.config import Share, SmbConfig

# MS-SMB2 2.2.13.1.1 access mask bits that change something.
FILE_WRITE_DATA = 0x2
FILE_APPEND_DATA = 0x4
FILE_WRITE_EA = 0x10
FILE_DELETE_CHILD = 0x40
FILE_WRITE_ATTRIBUTES = 0x100
DELETE = 0x10000
WRITE_DAC = 0x40000
WRITE_OWNER = 0x80000
GENERIC_ALL = 0x10000000
GENERIC_WRITE = 0x40000000
WRITE_ACCESS = (FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA | FILE_DELETE_CHILD
                | FILE_WRITE_ATTRIBUTES | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_ALL
                | GENERIC_WRITE)
# MS-SMB2 2.2.13 CreateDisposition and CreateOptions.
FILE_OPEN = 1
FILE_OPEN_IF = 3
FILE_DELETE_ON_CLOSE = 0x1000


@dataclass(frozen=True)
class Session:
    """Who a logged-on client is: a configured user (lower case), or None for a guest."""

    user: str | None


class Policy:
    """The access rules of one [smb] table."""

    def __init__(self, cfg: SmbConfig):
        self.cfg = cfg
        self.shares = {s.name.upper(): s for s in cfg.shares}
        self.users = {u.name.lower(): u.password for u in cfg.users}

    @property
    def guest_allowed(self) -> bool:
        """A session without credentials is useful only if some share takes guests."""
        return any(s.guest for s in self.cfg.shares)

    def share(self, name: str) -> Share | None:
        return self.shares.get(name.upper())

    def may_connect(self, share: Share, session: Session) -> bool:
        """Tree connect: guests only to guest shares; users to shares that list them
        (or list nobody)."""
        if session.user is None:
            return share.guest
        return share.guest or not share.users or session.user in {u.lower() for u in share.users}


def create_allowed(read_only: bool, access: int, disposition: int, options: int, exists: bool) -> bool:
    """Whether SMB2 CREATE may proceed on a share: on a read-only one only plain opens
    of what exists, asking for no write access (MS-SMB2 3.3.5.9)."""
    if not read_only:
        return True
    if access & WRITE_ACCESS or options & FILE_DELETE_ON_CLOSE:
        return False
    return disposition == FILE_OPEN or (disposition == FILE_OPEN_IF and exists)
