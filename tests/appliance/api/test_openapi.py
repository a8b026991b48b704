"""The OpenAPI document describes what the REST transport really does."""

import json
import subprocess
import sys
import urllib.request

from .conftest import TOKEN, Appliance, seed


def test_document_lists_every_exposed_method(api):
    spec = json.loads(urllib.request.urlopen(f"{api}/api/v1/openapi.json").read())
    ops = {op["operationId"]: (verb, path) for path, item in spec["paths"].items() for verb, op in item.items()}
    assert ops == {
        "machines.list": ("get", "/api/v1/machines"), "machines.get": ("get", "/api/v1/machines/{guid}"),
        "machines.update": ("patch", "/api/v1/machines/{guid}"),
        "machines.delete": ("delete", "/api/v1/machines/{guid}"),
        "events.list": ("get", "/api/v1/events"),
        "system.version": ("get", "/api/v1/system/version"), "system.health": ("get", "/api/v1/system/health"),
        "enroll.enroll": ("post", "/api/v1/enroll"),
        "jobs.list": ("get", "/api/v1/jobs"), "jobs.get": ("get", "/api/v1/jobs/{guid}"),
        "jobs.run": ("post", "/api/v1/jobs"), "jobs.script": ("post", "/api/v1/jobs/script"),
        "jobs.workflow": ("post", "/api/v1/workflows"), "jobs.cancel": ("post", "/api/v1/jobs/{guid}/cancel"),
    }
    machine = spec["components"]["schemas"]["Machine"]["properties"]
    assert machine["state"]["anyOf"][0]["enum"][:2] == ["NEW", "ENROLLED"]
    assert machine["interfaces"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/NetworkInterface"}
    assert spec["paths"]["/api/v1/machines/{guid}"]["patch"]["security"] == [{"basic": []}, {"bearer": []}]


def test_schemathesis_finds_no_server_error_and_no_mismatch(tmp_path):
    """Property-based requests from the document against a running appliance of its own."""
    seed(tmp_path)
    appliance = Appliance(tmp_path)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{appliance.base}/api/v1/openapi.json",
             "--checks", "all", "--max-examples", "15", "--seed", "20261129", "--workers", "1",
             "-H", f"Authorization: Bearer {TOKEN}", "--max-time", "40"],
            capture_output=True, text=True, timeout=300)
    finally:
        log = appliance.stop()
    assert result.returncode == 0, result.stdout[-4000:]
    assert "level=error" not in log, log


def test_a_write_the_store_refuses_is_413_with_its_reason_and_documented(api):
    """etcd turns down an object over its request limit: the caller gets 413 and etcd's
    words (not 503 "unreachable", which would send an operator after a healthy etcd)."""
    from appliance.api.dispatch import _domain_error
    from appliance.osis.kv import Refused

    error = _domain_error(Refused("etcd refused the request: etcdserver: request is too large"))
    assert (error.status, error.message) == (413, "etcd refused the request: etcdserver: request is too large")
    spec = json.loads(urllib.request.urlopen(f"{api}/api/v1/openapi.json").read())
    assert "413" in spec["paths"]["/api/v1/machines/{guid}"]["patch"]["responses"]
    assert "413" in spec["paths"]["/api/v1/enroll"]["post"]["responses"]
    assert "413" not in spec["paths"]["/api/v1/machines/{guid}"]["get"]["responses"]
