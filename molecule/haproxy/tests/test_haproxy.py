"""Real state of an LB converged by the haproxy role, in front of two stand-in app servers.

Every test runs once (no ``host`` fixture): the nodes are reached by name with
``docker exec``, which is how molecule's docker driver created them. Requests are
made from inside the containers with python3 (the image has no curl).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.recap import hosts_with_drift

SCENARIO = Path(__file__).resolve().parents[1]
LB = "haproxy-lb1"
APPS = ("haproxy-app1", "haproxy-app2")
FRONTEND_PORT, STATS_PORT = 8080, 8404
CONFIG = "/etc/haproxy/haproxy.cfg"
SOCKET = "/run/haproxy/admin.sock"

# GET url n times, each on a new connection; print one JSON list of [status, body or error].
FETCH = r"""
import json, sys, urllib.request
out = []
for _ in range(int(sys.argv[2])):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            out.append([r.status, r.read().decode()])
    except Exception as e:
        out.append([getattr(e, "code", 0), repr(e)])
print(json.dumps(out))
"""

# Requests in a loop on new connections while HAProxy is reloaded three times.
RELOAD_UNDER_LOAD = r"""
import json, subprocess, sys, threading, time, urllib.request
url, stop, ok, errors = sys.argv[1], threading.Event(), [0], []
def load():
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
                ok[0] += 1 if r.status == 200 else 0
                if r.status != 200:
                    errors.append(r.status)
        except Exception as e:
            errors.append(repr(e))
threads = [threading.Thread(target=load) for _ in range(4)]
for t in threads:
    t.start()
time.sleep(1)
for _ in range(3):
    subprocess.run(["systemctl", "reload", "haproxy"], check=True)
    time.sleep(1)
stop.set()
for t in threads:
    t.join()
print(json.dumps({"ok": ok[0], "errors": errors[:20], "failed": len(errors)}))
"""


def sh(node: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", node, "sh", "-c", script], capture_output=True, text=True, check=False)


def py(node: str, code: str, *args: str) -> str:
    proc = subprocess.run(
        ["docker", "exec", node, "python3", "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def address(node: str) -> str:
    return sh(node, "hostname -I").stdout.split()[0]


def fetch(url: str, count: int = 1) -> list[tuple[int, str]]:
    return [tuple(x) for x in json.loads(py(LB, FETCH, url, str(count)))]


def server_status() -> dict[str, str]:
    """Status of each server of backend app, from the admin socket."""
    proc = sh(LB, f"echo 'show stat' | socat stdio {SOCKET}")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(",") for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    header = proc.stdout.splitlines()[0].lstrip("# ").split(",")
    col = {name: i for i, name in enumerate(header)}
    return {f[col["svname"]]: f[col["status"]] for f in lines if f[col["pxname"]] == "app" and f[1] != "BACKEND"}


def wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def converge(extra_vars: dict) -> subprocess.CompletedProcess[str]:
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "converge.yml")]
    cmd += ["-e", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def frontend() -> str:
    return f"http://{address(LB)}:{FRONTEND_PORT}"


@pytest.fixture
def all_up():
    """Both app servers UP before and after the test."""
    assert wait_for(lambda: set(server_status().values()) == {"UP"}), server_status()
    yield
    for app in APPS:
        sh(app, "systemctl start standin-backend")
    assert wait_for(lambda: set(server_status().values()) == {"UP"}), server_status()


def test_check_mode_reports_no_change_on_converged_host(check_mode_stats):
    recap, output = check_mode_stats
    assert set(recap) >= {LB, *APPS}
    assert hosts_with_drift(recap) == {}, output


def test_config_is_valid_and_managed():
    proc = sh(LB, f"haproxy -c -f {CONFIG}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sh(LB, f"stat -c '%U %G %a' {CONFIG}").stdout.split() == ["root", "haproxy", "640"]


def test_runs_in_master_worker_mode():
    assert sh(LB, "systemctl is-active haproxy").stdout.strip() == "active"
    assert sh(LB, "systemctl is-enabled haproxy").stdout.strip() == "enabled"
    procs = sh(LB, "ps -C haproxy -o ppid=,args=").stdout.splitlines()
    assert len(procs) >= 2, procs  # a master and its worker
    assert all("-Ws" in p for p in procs), procs
    assert "master-worker" in sh(LB, f"grep -x '    master-worker' {CONFIG}").stdout


def test_listens_only_on_the_private_address():
    listening = sh(LB, "ss -Hltn").stdout.split()
    ip = address(LB)
    assert f"{ip}:{FRONTEND_PORT}" in listening
    assert f"{ip}:{STATS_PORT}" in listening
    assert f"0.0.0.0:{FRONTEND_PORT}" not in listening
    assert f"*:{FRONTEND_PORT}" not in listening


def test_backend_is_exactly_the_cells_app_servers_and_all_up():
    assert wait_for(lambda: set(server_status().values()) == {"UP"}), server_status()
    assert sorted(server_status()) == sorted(APPS)


def test_backend_has_health_checks_retries_and_redispatch():
    config = sh(LB, f"cat {CONFIG}").stdout
    for line in (
        "balance roundrobin",
        "retries 3",
        "option redispatch",
        "option httpchk",
        "http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost",
        "http-check expect status 200",
    ):
        assert f"    {line}\n" in config


def test_admin_socket_is_local_and_restricted():
    assert sh(LB, f"stat -c '%F %U %G %a' {SOCKET}").stdout.split() == ["socket", "root", "haproxy", "660"]
    assert "level admin" in sh(LB, f"grep 'stats socket' {CONFIG}").stdout
    # Admin level: the socket answers admin-only commands.
    assert sh(LB, f"echo 'show servers state app' | socat stdio {SOCKET}").returncode == 0


def test_requests_alternate_between_the_app_servers(frontend, all_up):
    responses = fetch(f"{frontend}/items", 6)
    assert all(status == 200 for status, _ in responses), responses
    hosts = [json.loads(body)["host"] for _, body in responses]
    assert set(hosts) == set(APPS)
    assert all(a != b for a, b in itertools.pairwise(hosts)), hosts
    # HAProxy tells the app who the client was.
    headers = {k.lower() for k in json.loads(responses[0][1])["headers"]}
    assert "x-forwarded-for" in headers


def test_stopped_app_server_goes_down_and_requests_still_succeed(frontend, all_up):
    sh(APPS[1], "systemctl stop standin-backend")
    assert wait_for(lambda: server_status()[APPS[1]].startswith("DOWN")), server_status()
    responses = fetch(f"{frontend}/items", 10)
    assert [status for status, _ in responses] == [200] * 10, responses
    assert {json.loads(body)["host"] for _, body in responses} == {APPS[0]}


def test_stopped_app_server_is_retried_elsewhere_before_it_is_marked_down(frontend, all_up):
    """retries + redispatch: right after an app server dies, before the checks notice,
    requests that would go to it are redispatched to the other one."""
    sh(APPS[0], "systemctl stop standin-backend")
    responses = fetch(f"{frontend}/items", 6)
    assert [status for status, _ in responses] == [200] * 6, responses


def test_stats_page_and_metrics_on_the_stats_port():
    base = f"http://{address(LB)}:{STATS_PORT}"
    [(status, body)] = fetch(f"{base}/metrics")
    assert status == 200
    assert "haproxy_process_" in body
    assert 'haproxy_server_status{proxy="app",server="haproxy-app1",state="UP"} 1' in body
    [(status, body)] = fetch(f"{base}/stats")
    assert status == 200
    assert "Statistics Report" in body


def workers() -> set[str]:
    """PIDs of the master's worker processes."""
    master = sh(LB, "systemctl show -p MainPID --value haproxy").stdout.strip()
    return set(sh(LB, f"pgrep -P {master} -x haproxy").stdout.split())


def test_reload_drops_no_connections(frontend, all_up):
    master = sh(LB, "systemctl show -p MainPID --value haproxy").stdout
    before = workers()
    result = json.loads(py(LB, RELOAD_UNDER_LOAD, f"{frontend}/items"))
    assert result["failed"] == 0, result
    assert result["ok"] > 50, result
    # It really reloaded: same master (no restart), a new worker.
    assert sh(LB, "systemctl show -p MainPID --value haproxy").stdout == master
    assert workers() - before, (before, workers())


def test_config_that_fails_validation_never_replaces_the_working_one(frontend, all_up):
    before = sh(LB, f"md5sum {CONFIG}").stdout
    master_before = sh(LB, "systemctl show -p MainPID --value haproxy").stdout
    proc = converge({"haproxy_backend_extra_options": ["option no-such-option"]})
    assert proc.returncode != 0, proc.stdout
    output = proc.stdout + proc.stderr
    assert "failed to validate" in output, output[-3000:]
    assert "no-such-option" in output, output[-3000:]  # haproxy -c says why
    assert sh(LB, f"md5sum {CONFIG}").stdout == before
    assert sh(LB, "systemctl show -p MainPID --value haproxy").stdout == master_before
    responses = fetch(f"{frontend}/items", 4)
    assert [status for status, _ in responses] == [200] * 4, responses
