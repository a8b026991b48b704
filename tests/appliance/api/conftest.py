"""A real appliance (osis + app server) in a subprocess, seeded with machines and events,
and one client per transport that speaks to it the way an outside client would."""

import base64
import json
import subprocess
import sys
import urllib.request
import xmlrpc.client

import httpx
import pytest

from appliance.api import amf
from appliance.api.dispatch import ERRORS
from appliance.config import validate
from appliance.osis.schema import domain
from appliance.osis.store import open_store
from tests.fixtures.servers import free_port, wait_for

TOKEN, USER, PASSWORD = "t0ken-for-tests", "admin", "pa55word"
STATUS_OF_FAULT = {code: status for status, code, _ in ERRORS.values()} | {401: 401, 404: 404}


def seed(state_dir):
    store = open_store(validate({}).osis, state_dir)
    for i, state in enumerate(["READY", "NEW", "READY"]):
        nics = [domain.NetworkInterface(mac=f"52:54:00:00:01:0{i}", driver="e1000", boot=True)]
        disks = [domain.Disk(name="vda", size_bytes=(i + 1) * 10 << 30, serial=f"DISK-{i}")]
        store.put(domain.Machine(guid=f"m{i}", hostname=f"node{i}", cpus=4, memory_mb=8192,
                                 interfaces=nics, disks=disks, tags={"rack": "r1"},
                                 state=domain.MachineState._NAMES_TO_VALUES[state], created=1700000000.5))
        store.put(domain.Event(guid=f"e{i}", timestamp=1700000000.0 + i, kind="machine.enrolled",
                               machine=f"m{i}", message=f"node{i} enrolled"))
    store.close()


@pytest.fixture(scope="module")
def api_state(tmp_path_factory):
    return tmp_path_factory.mktemp("api")


class Appliance:
    """`appliance run` with osis and the app server on a private port, stopped by PID."""

    def __init__(self, state, extra: str = ""):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = state / "appliance.toml"
        cfg.write_text(f'[node]\nstate_dir = "{state}"\n[osis]\nenabled = true\n'
                       f'[appserver]\nport = {self.port}\ntoken = "{TOKEN}"\nusername = "{USER}"\n'
                       f'password = "{PASSWORD}"\n{extra}')
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "-c", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert wait_for(self._up, 20, proc=self.proc), "appliance did not come up"

    def _up(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=1).status == 200
        except OSError:
            return False

    def stop(self) -> str:
        """Stop it; returns what it logged."""
        self.proc.terminate()
        return self.proc.communicate(timeout=10)[1]


@pytest.fixture(scope="module")
def api(api_state):
    seed(api_state)
    appliance = Appliance(api_state)
    yield appliance.base
    log = appliance.stop()
    assert "level=error" not in log, log  # no request may have hit a bug


def basic(user=USER, password=PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Rest:
    def __init__(self, base, spec):
        self.base, self.ops = base, {op["operationId"]: (verb.upper(), path)
                                     for path, item in spec["paths"].items() for verb, op in item.items()}

    def call(self, name, args, auth=None):
        verb, path = self.ops.get(name, ("POST", f"/api/v1/{name.replace('.', '/')}"))
        args = dict(args)
        for key in list(args):
            if "{" + key + "}" in path:
                path = path.replace("{" + key + "}", str(args.pop(key)))
        kw = {"params": args} if verb in ("GET", "DELETE") else {"json": args}
        reply = httpx.request(verb, self.base + path, headers=_auth(auth), timeout=10, **kw)
        return ("ok", reply.json()) if reply.status_code == 200 else ("error", reply.status_code)


class XmlRpc:
    def __init__(self, base, order):
        self.base, self.order = base, order

    def call(self, name, args, auth=None):
        transport = _HeaderTransport(_auth(auth))
        proxy = xmlrpc.client.ServerProxy(f"{self.base}/RPC2", allow_none=True, transport=transport)
        params = positional(self.order.get(name, list(args)), args)
        try:
            return "ok", getattr(proxy, name)(*params)
        except xmlrpc.client.Fault as fault:
            return "error", STATUS_OF_FAULT[fault.faultCode]


class _HeaderTransport(xmlrpc.client.Transport):
    def __init__(self, headers):
        super().__init__()
        self.extra = headers

    def send_headers(self, connection, headers):
        super().send_headers(connection, headers + list(self.extra.items()))


class Amf:
    def __init__(self, base, order):
        self.base, self.order = base, order

    def call(self, name, args, auth=None):
        params = positional(self.order.get(name, list(args)), args)
        body = amf.encode_envelope(amf.Envelope(3, {}, [amf.Message(name, "/1", params)]))
        reply = httpx.post(f"{self.base}/amf", content=body, headers=_auth(auth), timeout=10)
        assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-amf"
        msg = amf.decode_envelope(reply.content).messages[0]
        if msg.target == "/1/onResult":
            return "ok", msg.body
        assert msg.target == "/1/onStatus"
        return "error", msg.body["status"]


def positional(order, args):
    """Arguments in signature order, null for those skipped before the last one given."""
    last = max((order.index(k) for k in args if k in order), default=-1)
    return [args.get(p) for p in order[:last + 1]]


def _auth(auth):
    return {"Authorization": auth} if auth else {}


@pytest.fixture(scope="module")
def clients(api):
    spec = json.loads(urllib.request.urlopen(f"{api}/api/v1/openapi.json").read())
    order = {}
    for item in spec["paths"].values():
        for op in item.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            names = [p["name"] for p in op["parameters"]] + list(body.get("schema", {}).get("properties", {}))
            order[op["operationId"]] = names
    return {"rest": Rest(api, spec), "xmlrpc": XmlRpc(api, order), "amf": Amf(api, order)}
