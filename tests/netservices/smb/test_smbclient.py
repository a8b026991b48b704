"""Samba's smbclient against our server: lists, gets, refusals, traversal attempts."""

import hashlib
import subprocess

import pytest

from tests.fixtures.tools import require_tool
from tests.netservices.smb.conftest import PASSWORD, USER, sha


def smbclient(port: int, share: str, commands: str, *auth: str, cwd=None) -> subprocess.CompletedProcess:
    """Run smbclient (bounded); `auth` defaults to -N (no password, anonymous)."""
    return subprocess.run([require_tool("smbclient"), "-p", str(port), f"//127.0.0.1/{share}",
                           *(auth or ("-N",)), "-c", commands],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_lists_shares(ours):
    result = subprocess.run([require_tool("smbclient"), "-p", str(ours.port), "-N", "-L", "//127.0.0.1"],
                            capture_output=True, text=True, timeout=30)
    assert "MEDIA" in result.stdout and "PRIVATE" in result.stdout, result.stdout + result.stderr


def test_lists_a_directory(ours):
    result = smbclient(ours.port, "media", "ls sources\\*")
    assert result.returncode == 0, result.stderr
    assert "install.wim" in result.stdout and "deep" in result.stdout


@pytest.mark.parametrize("name", ["boot.wim", "large.iso", "sources\\install.wim", "sources\\empty"])
def test_gets_files_intact(tree, ours, tmp_path, name):
    result = smbclient(ours.port, "media", f'get "{name}" got', cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    original = tree / "media" / name.replace("\\", "/")
    assert sha((tmp_path / "got").read_bytes()) == sha(original.read_bytes())


def test_recursive_get_of_a_tree(tree, ours, tmp_path):
    result = smbclient(ours.port, "media", "recurse on; prompt off; cd sources; mget *", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    got = {p.relative_to(tmp_path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in tmp_path.rglob("*") if p.is_file()}
    source = tree / "media" / "sources"
    want = {p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in source.rglob("*") if p.is_file()}
    assert got == want


@pytest.mark.parametrize("command", ["put {local} new.txt", "mkdir newdir", "rm boot.wim",
                                     "rename boot.wim renamed.wim", "rmdir sources\\deep"])
def test_read_only_share_refuses_changes(tree, ours, tmp_path, command):
    local = tmp_path / "local.txt"
    local.write_text("upload\n")
    before = sorted(p.name for p in (tree / "media").rglob("*"))
    result = smbclient(ours.port, "media", command.format(local=local))
    assert "NT_STATUS_ACCESS_DENIED" in result.stdout + result.stderr
    assert sorted(p.name for p in (tree / "media").rglob("*")) == before


def test_guest_refused_when_credentials_are_required(ours):
    result = smbclient(ours.port, "private", "ls")
    assert "NT_STATUS_ACCESS_DENIED" in result.stdout + result.stderr
    assert "license.txt" not in result.stdout


def test_named_user_reads_its_share(ours, tmp_path):
    result = smbclient(ours.port, "private", "get license.txt", "-U", f"{USER}%{PASSWORD}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "license.txt").read_text() == "for alice only\n"


@pytest.mark.parametrize("user", [f"{USER}%wrong", f"nobody%{PASSWORD}"])
def test_wrong_password_or_unknown_user_refused(ours, user):
    result = smbclient(ours.port, "private", "ls", "-U", user)
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout + result.stderr
    assert "license.txt" not in result.stdout


@pytest.mark.parametrize("name", ["..\\secret.txt", "..\\media2\\secret.txt", "/etc/passwd",
                                  "\\..\\..\\secret.txt", "link-out", "sources\\..\\..\\media2\\secret.txt"])
def test_traversal_refused(ours, tmp_path, name):
    result = smbclient(ours.port, "media", f'get "{name}" got', cwd=tmp_path)
    assert result.returncode != 0 or "NT_STATUS" in result.stdout + result.stderr
    assert not (tmp_path / "got").exists()


def test_smb1_is_refused(ours):
    result = smbclient(ours.port, "media", "ls", "-N", "-m", "NT1", "--option=client min protocol=NT1")
    assert result.returncode != 0 and "boot.wim" not in result.stdout
