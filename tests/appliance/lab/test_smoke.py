"""`make run`'s lab: the appliance on a private segment, reached from a machine on it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[3]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_make_run_lab_reports_a_healthy_appliance_and_cleans_up():
    before = _namespaces()
    result = subprocess.run([sys.executable, "-m", "appliance.lab.smoke", "--config", "etc/lab.toml"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "seen from a machine at 10.77.0.2 on the lab segment" in result.stdout
    assert '"status": "ok"' in result.stdout
    assert {n for n in _namespaces() - before if n.startswith("lab-")} == set()


def test_lab_with_a_bad_config_says_so(tmp_path):
    bad = tmp_path / "lab.toml"
    bad.write_text("[appserver]\nport = -1\n")
    result = subprocess.run([sys.executable, "-m", "appliance.lab.smoke", "--config", str(bad)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "appserver.port: -1 should be greater than or equal to 1" in result.stderr
