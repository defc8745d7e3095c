"""Real state of an LB converged by the haproxy role, in front of two stand-in app servers.

Every test runs once (no ``host`` fixture): the nodes are reached by name with
``docker exec``, which is how molecule's docker driver created them. Requests are
made from inside the containers with python3 (the image has no curl).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.recap import hosts_with_drift
from tests.conftest import rendered

SCENARIO = Path(__file__).resolve().parents[1]
LB = "haproxy-lb1"
APPS = ("haproxy-app1", "haproxy-app2")
CONFIG = "/etc/haproxy/haproxy.cfg"
SOCKET = "/run/haproxy/admin.sock"
# While this file exists on an app server, its stand-in answers /healthz with 503 (files/standin_backend.py).
UNHEALTHY = "/run/standin-backend.unhealthy"
STATE_FILE = "/var/lib/haproxy/server-state"
# srv_check_state bits of `show servers state` (HAProxy's CHK_ST_CONFIGURED, CHK_ST_ENABLED).
CHECK_CONFIGURED, CHECK_ENABLED = 0x2, 0x4
# srv_admin_state bit of a server set to drain through the socket (HAProxy's SRV_ADMF_FDRAIN).
ADMIN_DRAIN = 0x8

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

# Open a TCP connection to host argv[1], port argv[2]; print open or refused.
CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
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


def admin(command: str) -> str:
    """Answer of the admin socket to ``command``."""
    proc = sh(LB, f"echo '{command}' | socat stdio {SOCKET}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@functools.cache
def backend() -> str:
    """The backend's name the LB was converged with: haproxy_backend_name of this
    scenario's inventory (group_vars/lb.yml), as Ansible renders it."""
    env = {"ANSIBLE_CONFIG": os.environ["ANSIBLE_CONFIG"]} if "ANSIBLE_CONFIG" in os.environ else {}
    return rendered(os.environ["MOLECULE_INVENTORY_FILE"], LB, "haproxy_backend_name", **env)[LB]


def table(text: str, sep: str | None) -> list[dict[str, str]]:
    """Rows of a socket answer whose header line starts with '# ', as dicts by column name."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# "))
    header = lines[start][2:].split(sep)
    return [dict(zip(header, line.split(sep), strict=False)) for line in lines[start + 1 :] if line]


def server_stats() -> dict[str, dict[str, str]]:
    """`show stat` of each server of the backend (status, check_status, wredis, ...)."""
    rows = table(admin("show stat"), ",")
    return {r["svname"]: r for r in rows if r["pxname"] == backend() and r["svname"] not in ("FRONTEND", "BACKEND")}


def check_status(stats: dict[str, str]) -> str:
    """A server's last check result from its `show stat` row (L7OK, L7STS, ...)."""
    return stats["check_status"].removeprefix("* ")  # "* L7OK" while a check is in flight


def servers_state() -> dict[str, dict[str, str]]:
    """`show servers state <backend>`: HAProxy's own view of each server (srv_op_state 2 = running)."""
    return {r["srv_name"]: r for r in table(admin(f"show servers state {backend()}"), None)}


def served_by(responses: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(status, the app server that answered) of each response; the error instead for a failed one."""
    return [(status, json.loads(body)["host"] if status == 200 else body) for status, body in responses]


def server_status() -> dict[str, str]:
    """Status of each server of the backend, from the admin socket."""
    return {name: row["status"] for name, row in server_stats().items()}


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


def refuses_connections(node: str, port: int) -> bool:
    """Whether a TCP connection from the LB to ``node``:``port`` is refused."""
    return py(LB, CONNECT, address(node), str(port)).strip() == "refused"


@pytest.fixture(scope="module")
def frontend(fleet_ports) -> str:
    return f"http://{address(LB)}:{fleet_ports['lb_frontend']}"


@pytest.fixture
def all_up():
    """Both app servers UP and checked before and after the test (which may stop, fail or unwatch one)."""
    assert wait_for(lambda: set(server_status().values()) == {"UP"}), server_status()
    yield
    for app in APPS:
        sh(app, f"rm -f {UNHEALTHY}; systemctl start standin-backend")
        admin(f"enable health {backend()}/{app}")
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


def test_listens_only_on_the_private_address(fleet_ports):
    listening = sh(LB, "ss -Hltn").stdout.split()
    ip, frontend_port = address(LB), fleet_ports["lb_frontend"]
    assert f"{ip}:{frontend_port}" in listening
    assert f"{ip}:{fleet_ports['lb_stats']}" in listening
    assert f"0.0.0.0:{frontend_port}" not in listening
    assert f"*:{frontend_port}" not in listening


def test_backend_is_exactly_the_cells_app_servers_and_all_up(fleet_ports):
    assert wait_for(lambda: set(server_status().values()) == {"UP"}), server_status()
    state = servers_state()
    assert {name: (s["srv_addr"], s["srv_port"]) for name, s in state.items()} == {
        app: (address(app), str(fleet_ports["app"])) for app in APPS
    }


def test_every_app_server_is_health_checked_over_http():
    """The admin socket's view: each server has an enabled check, and its last result is L7OK (HTTP 200)."""
    # Right after a (re)load the first check of each server takes up to one interval.
    wait_for(lambda: {check_status(s) for s in server_stats().values()} == {"L7OK"}, timeout=10)
    state, stats = servers_state(), server_stats()
    assert sorted(state) == sorted(stats) == sorted(APPS)
    for app in APPS:
        assert state[app]["srv_op_state"] == "2", state[app]  # running
        wanted = CHECK_CONFIGURED | CHECK_ENABLED
        assert int(state[app]["srv_check_state"]) & wanted == wanted, f"{app}: {state[app]['srv_check_state']}"
        assert check_status(stats[app]) == "L7OK", stats[app]
        assert stats[app]["check_code"] == "200", stats[app]


def test_server_failing_its_health_check_goes_down_though_it_still_serves(frontend, fleet_ports, all_up):
    """The check asks /healthz for a 200: a server whose /healthz says 503 leaves the
    rotation even though it accepts connections and serves every other path."""
    sick, healthy = APPS[1], APPS[0]
    sh(sick, f"touch {UNHEALTHY}")
    assert wait_for(lambda: server_status()[sick].startswith("DOWN")), server_status()
    stats = server_stats()[sick]
    assert (check_status(stats), stats["check_code"]) == ("L7STS", "503"), stats
    [(status, body)] = fetch(f"http://{address(sick)}:{fleet_ports['app']}/items")
    assert (status, json.loads(body)["host"]) == (200, sick)
    responses = fetch(f"{frontend}/items", 4)
    served = served_by(responses)
    assert served == [(200, healthy)] * 4, served


def test_admin_socket_is_local_and_restricted():
    assert sh(LB, f"stat -c '%F %U %G %a' {SOCKET}").stdout.split() == ["socket", "root", "haproxy", "660"]
    assert "level admin" in sh(LB, f"grep 'stats socket' {CONFIG}").stdout
    # Admin level: the socket answers admin-only commands.
    assert sh(LB, f"echo 'show servers state {backend()}' | socat stdio {SOCKET}").returncode == 0


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


def test_request_to_a_dead_server_still_up_for_haproxy_is_redispatched(frontend, fleet_ports, all_up):
    """retries + redispatch: an app server dies while HAProxy still believes it is UP;
    a request sent to it fails to connect, is retried on the other server and succeeds.

    HAProxy's view is frozen through the admin socket (its check paused, so it stays
    UP however long the test takes), and shown to be UP before and after the requests.
    """
    dead, alive = APPS
    admin(f"disable health {backend()}/{dead}")
    sh(dead, "systemctl kill --signal=KILL standin-backend")
    assert wait_for(lambda: refuses_connections(dead, fleet_ports["app"]), timeout=10), "the backend did not die"
    assert servers_state()[dead]["srv_op_state"] == "2", servers_state()
    redispatched = int(server_stats()[dead]["wredis"])

    responses = fetch(f"{frontend}/items", 4)

    served = served_by(responses)
    assert served == [(200, alive)] * 4, served
    assert servers_state()[dead]["srv_op_state"] == "2", servers_state()  # never marked DOWN
    # Requests were sent to the dead server and moved to the other one.
    assert int(server_stats()[dead]["wredis"]) > redispatched, server_stats()[dead]


def test_stats_page_and_metrics_on_the_stats_port(fleet_ports):
    base = f"http://{address(LB)}:{fleet_ports['lb_stats']}"
    [(status, body)] = fetch(f"{base}/metrics")
    assert status == 200
    assert "haproxy_process_" in body
    assert f'haproxy_server_status{{proxy="{backend()}",server="haproxy-app1",state="UP"}} 1' in body
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


def answering_worker() -> str:
    """PID of the worker that answers the admin socket ('' while none does)."""
    proc = sh(LB, f"echo 'show info' | socat stdio {SOCKET}")
    return next((line.split()[1] for line in proc.stdout.splitlines() if line.startswith("Pid:")), "")


def test_drained_server_stays_drained_across_a_reload(all_up):
    """The drop-in saves `show servers state` before each reload; the new worker loads it."""
    drained, other = APPS[1], APPS[0]
    admin(f"set server {backend()}/{drained} state drain")
    try:
        assert server_status()[drained] == "DRAIN", server_status()
        before = answering_worker()
        assert sh(LB, "systemctl reload haproxy").returncode == 0
        assert wait_for(lambda: answering_worker() not in ("", before), timeout=10), "no new worker"
        assert server_status() == {drained: "DRAIN", other: "UP"}, server_status()
        saved = {r["srv_name"]: r for r in table(sh(LB, f"cat {STATE_FILE}").stdout, None)}
        assert int(saved[drained]["srv_admin_state"]) & ADMIN_DRAIN, saved[drained]
    finally:
        admin(f"set server {backend()}/{drained} state ready")
    assert wait_for(lambda: server_status()[drained] == "UP"), server_status()


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
