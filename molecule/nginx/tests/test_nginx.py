"""Real state of a web server converged by the nginx role, in front of a stand-in LB.

Every test runs once (no ``host`` fixture): the nodes are reached by name with
``docker exec``, which is how molecule's docker driver created them. Requests are
made from inside the containers with python3 (the image has no curl).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.recap import hosts_with_drift

SCENARIO = Path(__file__).resolve().parents[1]
WEB, LB = "nginx-web1", "nginx-lb1"
CONFIG = "/etc/nginx/nginx.conf"
ACCESS_LOG = "/var/log/nginx/access.log"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}

# GET url; print JSON [status, headers (lower-case names), body].
FETCH = r"""
import json, sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError as e:
    r = e
print(json.dumps([r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()]))
"""


def sh(node: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", node, "sh", "-c", script], capture_output=True, text=True, check=False)


def address(node: str) -> str:
    return sh(node, "hostname -I").stdout.split()[0]


@pytest.fixture(scope="module")
def fetch(fleet_ports) -> Callable[..., tuple[int, dict[str, str], str]]:
    """fetch(path, node=WEB): GET http://<web1's address>:<fleet_port_http><path> from ``node``."""
    base = f"http://{address(WEB)}:{fleet_ports['http']}"

    def get(path: str, node: str = WEB) -> tuple[int, dict[str, str], str]:
        proc = subprocess.run(
            ["docker", "exec", node, "python3", "-c", FETCH, base + path], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        status, headers, body = json.loads(proc.stdout)
        return status, headers, body

    return get


def converge(extra_vars: dict) -> subprocess.CompletedProcess[str]:
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "converge.yml")]
    cmd += ["-e", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def lb_stopped(fleet_ports):
    sh(LB, "systemctl stop standin-backend")
    yield
    sh(LB, "systemctl start standin-backend")
    lb_port = fleet_ports["lb_frontend"]
    assert sh(LB, f"timeout 20 sh -c 'until ss -Hltn | grep -q :{lb_port}; do sleep 0.2; done'").returncode == 0


def test_check_mode_reports_no_change_on_converged_host(check_mode_stats):
    recap, output = check_mode_stats
    assert WEB in recap
    assert hosts_with_drift(recap) == {}, output


def test_config_is_valid_and_the_default_site_is_gone():
    proc = sh(WEB, "nginx -t")
    assert proc.returncode == 0, proc.stderr
    assert sh(WEB, "test -e /etc/nginx/sites-enabled/default").returncode == 1
    # Only the managed file is read: neither conf.d nor sites-enabled is included.
    dump = sh(WEB, "nginx -T 2>/dev/null | grep '^# configuration file'").stdout.split("\n")
    assert [line for line in dump if line] == [
        "# configuration file /etc/nginx/nginx.conf:",
        "# configuration file /etc/nginx/mime.types:",
    ]


def test_runs_and_listens(fleet_ports):
    assert sh(WEB, "systemctl is-active nginx").stdout.strip() == "active"
    assert sh(WEB, "systemctl is-enabled nginx").stdout.strip() == "enabled"
    assert f"0.0.0.0:{fleet_ports['http']}" in sh(WEB, "ss -Hltn").stdout.split()


def test_proxies_to_the_cells_lb_with_forwarding_headers(fetch):
    status, _, body = fetch("/items?x=1", node=LB)
    assert status == 200
    seen = json.loads(body)
    assert seen["host"] == LB
    assert seen["path"] == "/items?x=1"
    got = {k.lower(): v for k, v in seen["headers"].items()}
    assert got["x-real-ip"] == address(LB)
    assert got["x-forwarded-for"] == address(LB)
    assert got["x-forwarded-proto"] == "http"
    assert len(got["x-request-id"]) == 32
    # HTTP/1.1 with an empty Connection header: the upstream connection is kept alive.
    assert "connection" not in got


def test_upstream_connections_are_kept_alive(fetch, fleet_ports):
    for _ in range(3):
        assert fetch("/items")[0] == 200
    lb_port = fleet_ports["lb_frontend"]
    established = sh(WEB, f"ss -Htn state established '( dport = :{lb_port} )'").stdout.splitlines()
    assert len(established) >= 1, "no idle keepalive connection to the LB"


@pytest.mark.parametrize("path", ["/items", "/nginx-health"])
def test_security_headers_and_no_version(fetch, path):
    status, headers, _ = fetch(path)
    assert status == 200
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, headers)
    assert headers["server"] == "nginx"  # server_tokens off: no version


def test_access_log_is_json_with_request_and_upstream_times(fetch, fleet_ports):
    fetch("/items?log=1")
    line = sh(WEB, f"grep -F '/items?log=1' {ACCESS_LOG} | tail -n 1").stdout
    entry = json.loads(line)
    assert entry["uri"] == "/items?log=1"
    assert entry["status"] == 200
    assert isinstance(entry["request_time"], float)
    assert float(entry["upstream_response_time"]) >= 0
    assert entry["upstream_addr"] == f"{address(LB)}:{fleet_ports['lb_frontend']}"


def test_health_endpoint_answers_without_the_upstream(fetch, lb_stopped):
    status, headers, body = fetch("/nginx-health")
    assert (status, body) == (200, "ok\n")
    assert headers["content-type"] == "text/plain"
    # The proxied path does need the upstream: proof that the LB really is down.
    assert fetch("/items")[0] == 502


@pytest.mark.parametrize(
    "bad",
    [
        {"nginx_server_extra_directives": ["no_such_directive on;"]},
        {"nginx_upstream_host": "no-such-lb.invalid"},
    ],
    ids=["unknown-directive", "unresolvable-upstream"],
)
def test_config_that_fails_validation_never_replaces_the_working_one(fetch, bad):
    before = sh(WEB, f"md5sum {CONFIG}").stdout
    master_before = sh(WEB, "cat /run/nginx.pid").stdout
    proc = converge(bad)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "failed to validate" in output, output[-3000:]
    assert sh(WEB, f"md5sum {CONFIG}").stdout == before
    assert sh(WEB, "cat /run/nginx.pid").stdout == master_before
    status, _, body = fetch("/items")
    assert status == 200
    assert json.loads(body)["host"] == LB
