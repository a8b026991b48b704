"""Malformed XML, JSON and AMF bodies get 400-class answers, never a 500; the server keeps serving."""

import random

import httpx
import pytest

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}

BODIES = {
    "REST: not JSON": ("PATCH", "/api/v1/machines/m1", b"{not json", 400),
    "REST: JSON but a list": ("PATCH", "/api/v1/machines/m1", b"[1, 2]", 400),
    "REST: not UTF-8": ("PATCH", "/api/v1/machines/m1", b"\xff\xfe\x00", 400),
    "REST: changes of the wrong type": ("PATCH", "/api/v1/machines/m1", b'{"changes": 5}', 400),
    "REST: unknown argument": ("PATCH", "/api/v1/machines/m1", b'{"changes": {}, "x": 1}', 400),
    "REST: a revision of true": ("PATCH", "/api/v1/machines/m1", b'{"changes": {}, "revision": true}', 400),
    "REST: query parameter twice": ("GET", "/api/v1/machines?state=NEW&state=READY", b"", 400),
    "REST: unknown query parameter": ("GET", "/api/v1/events?colour=red", b"", 400),
    "REST: wrong verb": ("PUT", "/api/v1/machines/m1", b"{}", 405),
    "REST: no such path": ("GET", "/api/v1/gadgets", b"", 404),
    "XML-RPC: not XML": ("POST", "/RPC2", b"<methodCall><unclosed>", 400),
    "XML-RPC: XML but not a call": ("POST", "/RPC2", b"<?xml version='1.0'?><hello/>", 400),
    "XML-RPC: empty": ("POST", "/RPC2", b"", 400),
    "XML-RPC: entity expansion": ("POST", "/RPC2", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                                  b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                                  b"<methodCall><methodName>&c;</methodName></methodCall>", 400),
    "AMF: not AMF": ("POST", "/amf", b"GET / HTTP/1.0", 400),
    "AMF: truncated": ("POST", "/amf", b"\x00\x03\x00\x00\x00\x01\x00\x05mach", 400),
    "body over 1 MiB": ("POST", "/RPC2", b"<" * (1 << 20 + 1), 413),
}


@pytest.mark.parametrize("verb,path,body,status", BODIES.values(), ids=BODIES.keys())
def test_bad_bodies_get_4xx(api, verb, path, body, status):
    reply = httpx.request(verb, api + path, content=body, headers=AUTH, timeout=10)
    assert reply.status_code == status, reply.text
    if path.startswith("/api/"):
        assert set(reply.json()["error"]) == {"kind", "message"}


@pytest.mark.parametrize("path", ["/RPC2", "/amf", "/api/v1/machines/m1"])
def test_random_bytes_never_give_500(api, path):
    rng = random.Random(path)
    for _ in range(40):
        body = rng.randbytes(rng.randrange(0, 300))
        verb = "PATCH" if path.startswith("/api/") else "POST"
        reply = httpx.request(verb, api + path, content=body, headers=AUTH, timeout=10)
        assert 200 <= reply.status_code < 500, (body, reply.status_code, reply.text)
    assert httpx.get(api + "/api/v1/system/version", timeout=10).status_code == 200
