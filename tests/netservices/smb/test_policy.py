"""Access rules: who may log on and connect where, what a read-only share lets open."""

import pytest

from netservices.smb import policy
from netservices.smb.config import SmbConfig
from netservices.smb.policy import Policy, Session, create_allowed

CFG = SmbConfig(shares=[{"name": "media", "path": "/m"},
                        {"name": "any-user", "path": "/a", "guest": False},
                        {"name": "bob-only", "path": "/b", "guest": False, "users": ["Bob"]}],
                users=[{"name": "alice", "password": "a"}, {"name": "bob", "password": "b"}])

CONNECT = {
    "guest to a guest share": ("media", None, True),
    "guest to a users' share": ("any-user", None, False),
    "user to a guest share": ("media", "alice", True),
    "any user to a share listing nobody": ("any-user", "alice", True),
    "listed user, other case": ("bob-only", "bob", True),
    "unlisted user": ("bob-only", "alice", False),
}


@pytest.mark.parametrize("share,user,ok", CONNECT.values(), ids=CONNECT.keys())
def test_may_connect(share, user, ok):
    rules = Policy(CFG)
    assert rules.may_connect(rules.share(share.upper()), Session(user)) is ok


def test_guest_logon_only_when_some_share_takes_guests():
    assert Policy(CFG).guest_allowed
    assert not Policy(SmbConfig(shares=[{"name": "x", "path": "/x", "guest": False}],
                                users=[{"name": "u", "password": "p"}])).guest_allowed


CREATE = {
    "read an existing file": (True, 0x80000001, policy.FILE_OPEN, 0, True, True),
    "maximum allowed": (True, 0x02000000, policy.FILE_OPEN, 0, True, True),
    "open-if of an existing file": (True, 0x1, policy.FILE_OPEN_IF, 0, True, True),
    "open-if that would create": (True, 0x1, policy.FILE_OPEN_IF, 0, False, False),
    "write data": (True, policy.FILE_WRITE_DATA, policy.FILE_OPEN, 0, True, False),
    "generic write": (True, policy.GENERIC_WRITE, policy.FILE_OPEN, 0, True, False),
    "delete": (True, policy.DELETE, policy.FILE_OPEN, 0, True, False),
    "delete on close": (True, 0x1, policy.FILE_OPEN, policy.FILE_DELETE_ON_CLOSE, True, False),
    "create": (True, 0x1, 2, 0, False, False),
    "overwrite-if": (True, 0x1, 5, 0, True, False),
    "writable share": (False, policy.GENERIC_WRITE, 5, 0, True, True),
}


@pytest.mark.parametrize("read_only,access,disposition,options,exists,ok", CREATE.values(), ids=CREATE.keys())
def test_create_allowed(read_only, access, disposition, options, exists, ok):
    assert create_allowed(read_only, access, disposition, options, exists) is ok
