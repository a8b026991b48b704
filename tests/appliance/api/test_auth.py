"""Who may call what: open reads when configured, credentials for every write."""

import base64

import httpx
import pytest

from appliance.api import amf
from appliance.api.auth import Credentials, Guard, from_header

from .conftest import PASSWORD, TOKEN, USER, Appliance, basic, seed

GUARD = Guard(read_open=True, token="tok", username="admin", password="pw")


@pytest.mark.parametrize("header,expected", [
    (None, None),
    ("Bearer tok", Credentials(token="tok")),
    ("bearer   tok ", Credentials(token="tok")),
    ("Basic " + base64.b64encode(b"admin:p:w").decode(), Credentials(username="admin", password="p:w")),
    ("Basic not-base64!", Credentials(username="\0")),
    ("Basic " + base64.b64encode(b"no-colon").decode(), Credentials(username="\0")),
    ("Digest x", Credentials(username="\0")),
])
def test_reading_the_authorization_header(header, expected):
    assert from_header(header) == expected


@pytest.mark.parametrize("guard,writes,cred,allowed", [
    (GUARD, False, None, True),
    (GUARD, True, None, False),
    (GUARD, True, Credentials(token="tok"), True),
    (GUARD, True, Credentials(username="admin", password="pw"), True),
    (GUARD, False, Credentials(token="wrong"), False),
    (GUARD, True, Credentials(username="admin", password=""), False),
    (Guard(read_open=False, token="tok"), False, None, False),
    (Guard(read_open=False, token="tok"), False, Credentials(token="tok"), True),
    (Guard(), True, Credentials(token=""), False),  # nothing configured: nobody writes
    (Guard(), True, Credentials(username="", password=""), False),
])
def test_guard(guard, writes, cred, allowed):
    assert guard.allows(writes, cred) is allowed


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    state = tmp_path_factory.mktemp("closed")
    seed(state)
    appliance = Appliance(state, "read_open = false\n")
    yield appliance.base
    appliance.stop()


def test_closed_appliance_needs_credentials_to_read(closed):
    assert httpx.get(f"{closed}/api/v1/machines/m1").status_code == 401
    assert httpx.get(f"{closed}/api/v1/machines/m1", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(f"{closed}/api/v1/machines/m1", headers={"Authorization": basic()}).status_code == 200
    reply = httpx.get(f"{closed}/api/v1/machines/m1")
    assert reply.headers["www-authenticate"] == 'Basic realm="appliance"'


def test_amf_credentials_header(closed):
    def call(headers):
        env = amf.Envelope(3, headers, [amf.Message("machines.get", "/1", ["m1"])])
        reply = httpx.post(f"{closed}/amf", content=amf.encode_envelope(env))
        return amf.decode_envelope(reply.content).messages[0].target

    assert call({}) == "/1/onStatus"
    assert call({"Credentials": {"userid": USER, "password": "nope"}}) == "/1/onStatus"
    assert call({"Credentials": {"userid": USER, "password": PASSWORD}}) == "/1/onResult"
