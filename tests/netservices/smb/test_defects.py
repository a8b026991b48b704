"""impacket's server defects: each shown present on plain impacket, and absent on ours.

Every test runs one check twice — against impacket's SimpleSMBServer set up the way its
documentation does, asserting the defect is there (so the test documents it, and fails
the day impacket fixes it) — and against our SmbServer, asserting it is not. Clients
are impacket's own, which sends names exactly as given (smbclient normalizes `..`).
"""

import io
import logging
import re
import threading
import time

import pytest
from impacket import ntlm, smb3
from impacket import smb3structs as smb2
from impacket.smbconnection import SessionError

from tests.netservices.smb.conftest import PASSWORD, USER, Ours, Plain, config, connect


def read(conn, share: str, path: str) -> bytes | None:
    """The file's bytes, or None when the server refuses."""
    out = io.BytesIO()
    try:
        conn.getFile(share, path, out.write)
    except SessionError:
        return None
    return out.getvalue()


def test_sibling_with_the_share_as_prefix(tree, plain, ours):
    sibling = "..\\media2\\secret.txt"
    assert read(connect(plain.port), "MEDIA", sibling) == b"sibling secret\n"  # the defect
    conn = connect(ours.port)
    assert read(conn, "media", sibling) is None
    assert read(conn, "media", "sources\\..\\..\\media2\\secret.txt") is None
    assert read(conn, "media", "boot.wim") == (tree / "media" / "boot.wim").read_bytes()


@pytest.mark.parametrize("name", ["..\\secret.txt", "\\..\\secret.txt", "sources\\..\\..\\secret.txt",
                                  "link-out", "\\\\127.0.0.1\\media\\..\\secret.txt",
                                  "C:\\secret.txt", "boot.wim:stream"])
def test_names_that_leave_the_share(ours, name):
    assert read(connect(ours.port), "media", name) is None


def test_symlink_inside_the_share_is_served(tree, ours):
    assert read(connect(ours.port), "media", "link-in") == \
        (tree / "media" / "sources" / "install.wim").read_bytes()


def test_ipc_share_is_not_the_current_directory(tree, plain, ours, monkeypatch):
    monkeypatch.chdir(tree)
    assert read(connect(plain.port), "IPC$", "secret.txt") == b"outside every share\n"  # the defect
    assert read(connect(ours.port), "IPC$", "secret.txt") is None


def test_anonymous_logon_when_credentials_are_configured(tree):
    plain = Plain(tree, credentials=True)
    try:
        assert read(connect(plain.port), "MEDIA", "boot.wim") is not None  # the defect
    finally:
        plain.stop()
    users_only = Ours(config(tree, shares=[{"name": "private", "path": str(tree / "private"),
                                            "guest": False}]))
    try:
        with pytest.raises(SessionError):
            connect(users_only.port)
        assert read(connect(users_only.port, USER, PASSWORD), "private", "license.txt") == b"for alice only\n"
    finally:
        users_only.stop()


def test_guest_cannot_reach_a_share_for_users(ours):
    conn = connect(ours.port)
    with pytest.raises(SessionError):
        conn.connectTree("private")


def test_a_failed_logon_does_not_open_the_session(tree):
    def after_failure(port: int, share: str) -> bool:
        conn = connect_raw(port)
        with pytest.raises(SessionError):
            conn.login(USER, "wrong")
        try:
            conn.connectTree(share)
        except SessionError:
            return False
        return True

    plain = Plain(tree, credentials=True)
    try:
        assert after_failure(plain.port, "MEDIA")  # the defect
    finally:
        plain.stop()
    users_only = Ours(config(tree, shares=[{"name": "media", "path": str(tree / "media"), "guest": False}]))
    try:
        assert not after_failure(users_only.port, "media")
    finally:
        users_only.stop()


def connect_raw(port: int):
    from impacket.smbconnection import SMBConnection
    return SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port,
                         preferredDialect=smb2.SMB2_DIALECT_002, timeout=10)


def challenges(port: int, monkeypatch) -> list[bytes]:
    """The NTLM server challenge of two logons, as the client saw them."""
    seen = []
    original = ntlm.getNTLMSSPType3

    def spy(type1, type2, *args, **kwargs):
        seen.append(ntlm.NTLMAuthChallenge(type2)["challenge"])
        return original(type1, type2, *args, **kwargs)

    monkeypatch.setattr(ntlm, "getNTLMSSPType3", spy)
    for _ in range(2):
        connect(port, USER, PASSWORD).logoff()
    monkeypatch.setattr(ntlm, "getNTLMSSPType3", original)
    return seen


def test_server_challenge_is_random(tree, ours, monkeypatch):
    plain = Plain(tree, credentials=True)
    try:
        first, second = challenges(plain.port, monkeypatch)
        assert first == second  # the defect: always the same
    finally:
        plain.stop()
    first, second = challenges(ours.port, monkeypatch)
    assert first != second and len(first) == 8


HASH_LINE = re.compile(rf"{USER}::[^:]*:[0-9a-f]{{16}}:[0-9a-f]{{32}}:", re.IGNORECASE)


def test_authentication_is_not_logged_as_a_crackable_hash(tree, ours, caplog):
    plain = Plain(tree, credentials=True)
    try:
        with caplog.at_level(logging.DEBUG):
            connect(plain.port, USER, PASSWORD).logoff()
        assert any(HASH_LINE.search(r.getMessage()) for r in caplog.records)  # the defect
    finally:
        plain.stop()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        connect(ours.port, USER, PASSWORD).logoff()
    assert caplog.records and not any(HASH_LINE.search(r.getMessage()) for r in caplog.records)


def test_root_logger_is_left_alone(tree, tmp_path):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    plain = Plain(tree)
    try:
        plain.simple.setLogFile(str(tmp_path / "smb.log"))
        seized = (list(root.handlers), root.level)
    finally:
        for handler in root.handlers:
            if handler not in before[0]:
                handler.close()
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        plain.stop()
    assert seized != before  # the defect: basicConfig(force=True) at DEBUG
    running = Ours(config(tree))
    try:
        connect(running.port, USER, PASSWORD).logoff()
        assert (list(root.handlers), root.level) == before
    finally:
        running.stop()


def test_search_pattern_cannot_walk_out_of_the_directory(plain, ours):
    def listing(port: int, share: str) -> bytes | None:
        smb = connect(port).getSMBServer()
        tid = smb.connectTree(share)
        fid = smb.create(tid, "sources", smb2.FILE_READ_DATA | smb2.FILE_LIST_DIRECTORY, smb2.FILE_SHARE_READ,
                         smb2.FILE_DIRECTORY_FILE, smb2.FILE_OPEN, 0)
        try:
            return smb.queryDirectory(tid, fid, "../../*")
        except smb3.SessionError:
            return None

    assert "secret.txt".encode("utf-16le") in listing(plain.port, "MEDIA")  # the defect
    assert listing(ours.port, "media") is None


def test_stop_does_not_wait_for_connected_clients(tree):
    plain = Plain(tree)
    client = connect(plain.port)
    closing = threading.Thread(target=lambda: (plain.server.shutdown(), plain.server.server_close()),
                               daemon=True)
    closing.start()
    closing.join(2.0)
    hung = closing.is_alive()
    client.close()
    closing.join(5.0)
    assert hung  # the defect: stop() blocks while a client stays connected
    running = Ours(config(tree))
    client = connect(running.port)
    assert running.stop() < 3.0
    with pytest.raises(Exception):  # noqa: B017 - any error: the connection is gone
        client.listPath("media", "*")
    assert not running.thread.is_alive()


def test_connections_beyond_the_limit_are_closed(tree):
    running = Ours(config(tree, max_connections=1))
    try:
        first = connect(running.port)
        with pytest.raises(Exception):  # noqa: B017 - refused: closed at once
            connect(running.port)
        assert read(first, "media", "boot.wim") is not None
        first.close()
        time.sleep(0.3)
        assert read(connect(running.port), "media", "boot.wim") is not None
    finally:
        running.stop()
