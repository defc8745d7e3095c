"""Real state of an app server converged by the app role, against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable

import pytest

from scripts.recap import hosts_with_drift

testinfra_hosts = ["app-app1"]

# The release converge.yml deploys (its app_release_version) and the next
# one; prepare.yml builds both.
VERSION = "1.1.1"
NEXT = "1.2.0"
ROOT = "/opt/fleet-app"
SERVICE = "fleet-app"


# METHOD URL [JSON body]: print the status, then the response's body.
REQUEST = (
    "import json, sys, urllib.request, urllib.error\n"
    "method, url, data = sys.argv[1], sys.argv[2], sys.argv[3].encode() or None\n"
    "req = urllib.request.Request(url, data=data, method=method, headers={'Content-Type': 'application/json'})\n"
    "try:\n"
    "    resp = urllib.request.urlopen(req, timeout=10)\n"
    "except urllib.error.HTTPError as exc:\n"
    "    resp = exc\n"
    "print(resp.status)\n"
    "print(resp.read().decode())\n"
)


@pytest.fixture(scope="module")
def http(fleet_ports) -> Callable[..., tuple[int, dict]]:
    """http(host, method, path, body=None): a request from inside the app server to its
    fleet_port_app (the port is not published) -> (status, JSON)."""

    def request(host, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = json.dumps(body) if body is not None else ""
        url = f"http://127.0.0.1:{fleet_ports['app']}{path}"
        out = host.check_output("python3 -c %s %s %s %s", REQUEST, method, url, payload)
        status, _, text = out.partition("\n")
        return int(status), json.loads(text)

    return request


def converge(*extra: str) -> str:
    """Run this scenario's converge.yml again with extra vars; return its output."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    proc = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def test_check_mode_reports_no_change_on_converged_host(check_mode_stats):
    recap, output = check_mode_stats
    assert recap, "the check run reported no hosts"
    assert hosts_with_drift(recap) == {}, output


def test_service_runs_as_its_own_user_and_listens(host, fleet_ports):
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled
    assert host.socket(f"tcp://0.0.0.0:{fleet_ports['app']}").is_listening
    user = host.user("fleet-app")
    assert user.shell == "/usr/sbin/nologin"
    owners = host.check_output("ps -o user= -C gunicorn | sort -u").split()
    assert owners == ["fleet-app"]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("User", "fleet-app"),
        ("Type", "notify"),
        ("EnvironmentFiles", "/etc/fleet-app/app.env (ignore_errors=no)"),
    ],
)
def test_unit_is_hardened(host, prop, value):
    assert host.check_output(f"systemctl show -p {prop} --value {SERVICE}") == value


def test_app_cannot_write_its_code_or_config(host):
    pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    # The service's own mount namespace: the system is read-only for it.
    out = host.run(f"nsenter -t {pid} -m runuser -u fleet-app -- touch {ROOT}/current/x /etc/x")
    assert out.rc != 0
    assert "Read-only file system" in out.stderr or "Permission denied" in out.stderr


def test_env_file_is_root_only_and_splits_reads_from_writes(host):
    env = host.file("/etc/fleet-app/app.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    content = env.content_string
    assert 'APP_CELL="cell_a"' in content
    assert re.search(r'^APP_DB_WRITE_DSN="host=app-db .*user=app_rw', content, re.M)
    assert re.search(r'^APP_DB_READ_DSN="host=app-db .*user=app_ro', content, re.M)


def test_livez_answers_without_the_databases(host, http):
    status, body = http(host, "GET", "/livez")
    assert status == 200, body
    assert body == {"status": "live", "host": "app-app1", "cell": "cell_a", "version": VERSION}


def test_healthz_names_cell_and_both_databases(host, http):
    status, body = http(host, "GET", "/healthz")
    assert status == 200, body
    assert body["status"] == "ok"
    assert (body["host"], body["cell"], body["version"]) == ("app-app1", "cell_a", VERSION)
    assert body["read_from"] == "app-db"
    assert body["write_to"] == "app-db"
    for side in ("write", "read"):
        check = body["checks"][side]
        assert check["ok"] is True, check
        assert check["breaker_open"] is False, check
        assert check["host"] == "app-db"
    # One server plays both here: neither side is in recovery.
    assert body["checks"]["read"]["in_recovery"] is False


def test_env_file_sets_connect_timeout_and_retry_interval(host):
    content = host.file("/etc/fleet-app/app.env").content_string
    assert re.search(r'^APP_DB_CONNECT_TIMEOUT="1.5"$', content, re.M)
    assert re.search(r'^APP_DB_RETRY_INTERVAL="5"$', content, re.M)


def test_write_then_read_items(host, http):
    name = f"item-{uuid.uuid4().hex[:8]}"
    status, created = http(host, "POST", "/items", {"name": name})
    assert status == 201, created
    assert created["name"] == name
    assert (created["host"], created["cell"], created["write_to"]) == ("app-app1", "cell_a", "app-db")
    status, listed = http(host, "GET", "/items")
    assert status == 200, listed
    assert listed["read_from"] == "app-db"
    assert {"id": created["id"], "name": name} in [{"id": i["id"], "name": i["name"]} for i in listed["items"]]


def test_bad_request_is_rejected(host, http):
    status, body = http(host, "POST", "/items", {"name": ""})
    assert status == 400, body


def test_release_layout_and_current_link(host):
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{ROOT}/releases/{VERSION}"
    release = host.file(f"{ROOT}/releases/{VERSION}")
    assert (release.user, release.mode) == ("root", 0o755)
    for name in ("INSTALLED", "MANIFEST.json", "requirements.lock", f"fleet-app-{VERSION}.tar.gz"):
        assert host.file(f"{ROOT}/releases/{VERSION}/{name}").exists, name


def normalized(pins) -> set[str]:
    return {re.sub(r"[-_.]+", "-", p.split("==")[0]).lower() + "==" + p.split("==")[1] for p in pins}


def test_release_was_installed_from_its_own_wheels(host):
    venv = f"{ROOT}/current/venv"
    assert host.check_output(f"{venv}/bin/fleet-app version") == VERSION
    freeze = host.check_output(f"{venv}/bin/pip freeze --all --disable-pip-version-check").split()
    lock = host.file(f"{ROOT}/releases/{VERSION}/requirements.lock").content_string
    pinned = [line.split()[0] for line in lock.splitlines() if line and not line.startswith("#")]
    # Exactly the release's pinned wheels, besides the pip and setuptools venv brings.
    installed = {p for p in normalized(freeze) if not p.startswith(("pip==", "setuptools=="))}
    assert installed == normalized(pinned)
    # The host has no package index configured: nothing could have come from PyPI.
    assert host.run(f"{venv}/bin/pip config list").stdout.strip() == ""


def test_rollback_with_one_variable(host, http):
    """Deploy NEXT, then roll back to the previous release (VERSION, as converge.yml says)
    with app_rollback, keeping two releases (the fewest there are): the one it runs and
    NEXT, the only other, stay (pruning: tests/lab/test_rollout.py)."""
    converge("-e", f"app_release_version={NEXT}")
    assert host.file(f"{ROOT}/current").linked_to == f"{ROOT}/releases/{NEXT}"
    assert http(host, "GET", "/")[1]["version"] == NEXT

    rollback = ("-e", f"app_release_version={NEXT}", "-e", "app_rollback=true", "-e", '{"app_releases_keep": 2}')
    out = converge(*rollback)
    assert host.file(f"{ROOT}/current").linked_to == f"{ROOT}/releases/{VERSION}"
    assert http(host, "GET", "/")[1]["version"] == VERSION
    assert re.search(r"app-app1\s+: ok=\d+\s+changed=[1-9]", out), out[-3000:]
    # Both releases stay on the host; rolling back again changes nothing.
    assert host.file(f"{ROOT}/releases/{NEXT}/INSTALLED").exists
    again = converge(*rollback)
    assert re.search(r"app-app1\s+: ok=\d+\s+changed=0 ", again), again[-3000:]
    assert host.file(f"{ROOT}/releases/{NEXT}/INSTALLED").exists
    assert http(host, "GET", "/healthz")[0] == 200
