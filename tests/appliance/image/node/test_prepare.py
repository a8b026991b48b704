"""Before the appliance starts in the node image: directories, the enrollment image, local servers.

The PostgreSQL role and database are made for real, on a throwaway server.
"""

import json
import subprocess
import sys

import psycopg
import pytest

from appliance import config
from appliance.image import prepare
from tests.fixtures.tools import require_tool

UNITS = {
    "defaults": ({}, []),
    "postgresql views on this node": (
        {"osis": {"enabled": True, "views": "postgresql", "postgresql_dsn": "host=127.0.0.1 user=a password=b"}},
        ["postgresql.service"]),
    "postgresql views over the socket": (
        {"osis": {"enabled": True, "views": "postgresql", "postgresql_dsn": "dbname=appliance"}},
        ["postgresql.service"]),
    "postgresql views elsewhere": (
        {"osis": {"enabled": True, "views": "postgresql", "postgresql_dsn": "host=10.0.0.5 user=a"}}, []),
    "osis off": ({"osis": {"views": "postgresql", "postgresql_dsn": "host=localhost"}}, []),
    "ejabberd accounts": ({"xmpp": {"accounts": "ejabberd"}}, ["ejabberd.service"]),
    "prosody accounts": ({"xmpp": {"accounts": "prosody"}}, []),
    "nginx is the http component's child": ({"http": {"enabled": True, "nginx": True}}, []),
}


@pytest.mark.parametrize("data, units", UNITS.values(), ids=UNITS.keys())
def test_local_servers_started_only_when_the_config_asks(data, units):
    assert prepare.wanted_units(config.validate(data)) == units


def test_directories_of_the_enabled_components_are_made(tmp_path):
    cfg = config.validate({"node": {"state_dir": str(tmp_path / "state")},
                           "tftp": {"enabled": True, "root": str(tmp_path / "tftp")},
                           "http": {"root": str(tmp_path / "http")}})
    made = prepare.directories(cfg)
    assert made == [tmp_path / "state", tmp_path / "tftp"] and not (tmp_path / "http").exists()


def test_enrollment_image_is_copied_once_and_replaced_by_another_build(tmp_path):
    source = tmp_path / "image"
    source.mkdir()
    (source / "vmlinuz").write_bytes(b"kernel")
    (source / "build.json").write_text(json.dumps({"recipe_hash": "1"}))
    http = tmp_path / "http"
    assert prepare.install_enroll_image(http, source)
    assert (http / "enroll/vmlinuz").read_bytes() == b"kernel"
    assert not prepare.install_enroll_image(http, source)  # the same build: left alone
    (source / "vmlinuz").write_bytes(b"kernel 2")
    (source / "build.json").write_text(json.dumps({"recipe_hash": "2"}))
    assert prepare.install_enroll_image(http, source)
    assert (http / "enroll/vmlinuz").read_bytes() == b"kernel 2"
    assert not prepare.install_enroll_image(tmp_path / "http2", tmp_path / "none")


def test_ejabberd_serves_the_appliance_domain():
    require_tool("ejabberdctl")
    text = open("/etc/ejabberd/ejabberd.yml").read()  # Debian's, as the image has it
    changed = prepare.ejabberd_hosts(text, "rack.internal")
    before, after = text.splitlines(), changed.splitlines()
    assert after[after.index("hosts:") + 1] == '  - "rack.internal"'
    assert set(before) - set(after) == {"  - localhost"} and set(after) - set(before) == {'  - "rack.internal"'}
    assert prepare.ejabberd_hosts(changed, "rack.internal") == changed


def test_postgres_role_and_database_are_made_and_the_dsn_connects(postgres):
    psql = [require_tool("psql"), "-h", postgres.host, "-p", str(postgres.port), "-U", postgres.user]
    role, password = 'app"liance', "pa'ss word"
    dsn = psycopg.conninfo.make_conninfo(host=postgres.host, port=postgres.port, user=role, password=password,
                                         dbname="views db")
    prepare.postgres_role(dsn, psql)
    prepare.postgres_role(dsn, psql)  # a second boot: nothing to do, no error
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (role, "views db")
    with psycopg.connect(postgres.dsn) as admin:  # the fixture trusts every login: check what was stored
        row = admin.execute("SELECT rolcanlogin, rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid "
                            "WHERE rolname = %s", (role,)).fetchone()
        owner = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'views db'")
        assert row == (True, True) and owner.fetchone() == (role,)


def test_a_bad_config_stops_prepare_with_exit_2(tmp_path):
    bad = tmp_path / "appliance.toml"
    bad.write_text("[dhcp]\nlease_tme = 5\n")
    result = subprocess.run([sys.executable, "-m", "appliance.image.prepare", str(bad)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "dhcp.lease_tme" in result.stderr
