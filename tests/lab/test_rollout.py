"""Rolling changes of the app tier under load: three broken releases in a row, a new
release and a rollback, each through playbooks/app.yml while clients use the fleet
through the ELB stand-in, every request counted. Each test leaves the lab on the release
it started on."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from scripts.deploy import read_release, release_file
from scripts.engine import engine_env
from scripts.lab import container_ip
from tests.conftest import ROOT, ansible_env
from tests.lab.conftest import (
    BESIDE_A_RUN,
    ELB,
    FLOOR_BESIDE_A_RUN,
    INVENTORY,
    Load,
    drift,
    haproxy_backends,
    haproxy_command,
    haproxy_servers,
    haproxy_sessions,
    http,
    lab_exec,
    wait_until,
)

pytestmark = pytest.mark.lab

CURRENT = read_release(release_file(INVENTORY))["app_release_version"]
_major, _minor, _patch = (int(p) for p in CURRENT.split("."))
NEXT = f"{_major}.{_minor}.{_patch + 1}"
BROKEN = [f"{_major}.{_minor}.{_patch + n}" for n in (2, 3, 4)]
RELEASES_KEEP = yaml.safe_load((ROOT / "roles" / "app" / "defaults" / "main.yml").read_text())["app_releases_keep"]
APPS = ["app1", "app2", "app3", "app4"]


def build(version: str, source: Path | None = None, out: Path | None = None) -> None:
    cmd = [str(ROOT / "scripts" / "build-release.sh"), "--version", version]
    if source is not None:
        cmd += ["--source", str(source)]
    if out is not None:
        cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """playbooks/<name> as an operator runs it, with Mitogen's strategy (the fleet's default engine)."""
    cmd = ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / name), *extra]
    env = ansible_env(**engine_env("mitogen"))
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)


def deploy(*extra: str) -> subprocess.CompletedProcess[str]:
    return playbook("app.yml", *extra)


def drained(out: str) -> list[list[str]]:
    """The servers each run of the drain task took out of their LBs, in order."""
    batches = []
    for block in re.split(r"^(?:TASK|RUNNING HANDLER) \[", out, flags=re.M)[1:]:
        if block.startswith("app : restart | Drain the server in its LB]"):
            batches.append(sorted(re.findall(r"^changed: \[(\w+) -> ", block, flags=re.M)))
    return batches


def task_output(out: str, task: str) -> str:
    """What a run printed for the app role's task named ``task`` (all hosts)."""
    blocks = re.split(r"^(?=(?:TASK|RUNNING HANDLER|PLAY) \[)", out, flags=re.M)
    found = [b for b in blocks if b.startswith(f"TASK [app : {task}")]
    assert found, f"no task {task!r} in the run"
    return "".join(found)


def versions() -> dict[str, str]:
    """app server -> the release its current link points at."""
    return {app: Path(lab_exec(app, "readlink -f /opt/fleet-app/current").strip()).name for app in APPS}


def all_up() -> dict[str, dict[str, str]]:
    return {lb: haproxy_servers(lb) for lb in ("lb1", "lb2")}


def assert_every_server_up() -> None:
    states = all_up()
    assert {s for servers in states.values() for s in servers.values()} == {"UP"}, states


def served_versions(n: int = 24) -> set[str]:
    return {body["version"] for status, body in (http("GET", f"{ELB}/") for _ in range(n)) if status == 200}


@pytest.fixture(scope="module")
def releases() -> None:
    build(CURRENT)
    build(NEXT)


def drained_in(lb: str) -> list[str]:
    """The servers ``lb`` holds drained by an admin (srv_admin_state's forced-drain bit),
    whether their health checks pass (DRAIN) or not (DOWN)."""
    out = haproxy_command(lb, "show servers state")
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    return sorted(row[3] for row in rows if int(row[6]) & 0x08)


def releases_held() -> dict[str, list[str]]:
    """app server -> the releases under /opt/fleet-app/releases."""
    return {app: lab_exec(app, "ls /opt/fleet-app/releases").split() for app in APPS}


def build_broken(version: str, tmp_path: Path, kind: str) -> None:
    """The app as it is, but ``unready`` (/healthz answers 503: it fails its gate) or
    ``unstartable`` (packaged without its server, gunicorn: systemctl restart fails)."""
    source = tmp_path / version
    shutil.copytree(ROOT / "app", source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    if kind == "unready":
        app_py = source / "src" / "fleet_app" / "app.py"
        code = app_py.read_text()
        marker = "    def healthz(self, environ: dict) -> Response:\n"
        assert marker in code
        app_py.write_text(
            code.replace(marker, marker + '        return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "broken"}\n', 1)
        )
    else:
        for name in ("pyproject.toml", "requirements.txt"):
            text = (source / name).read_text()
            kept = [line for line in text.splitlines(keepends=True) if "gunicorn" not in line]
            assert len(kept) == len(text.splitlines()) - 1, name
            (source / name).write_text("".join(kept))
    # Beside the test, not in .cache/releases: a later `bin/fleet deploy` of that version
    # must build the real app, not find this one.
    build(version, source, out=tmp_path / "releases")


# First in the module: the deploy and the rollback after it are the next deploy and
# the rollback these must leave possible.
def test_three_broken_releases_in_a_row_each_stop_at_the_first_batch_and_fail_no_request(releases, tmp_path):
    """Each broken release is staged on every server and fails its gate on the first batch,
    which goes back to the release it ran. Three in a row fill app_releases_keep (3) on
    the servers that never switched and, on those that did, make the release they run the
    oldest of the others: it must be kept, and no server may hold more than three. The
    third does not even start: a failed restart goes back like a failed gate."""
    kinds = dict(zip(BROKEN, ("unready", "unready", "unstartable"), strict=True))
    failure = {"unready": "failed its gate", "unstartable": "failed to start"}
    for version, kind in kinds.items():
        build_broken(version, tmp_path, kind)
    # Releases are immutable by version: an earlier run's builds of these on a reused lab go first.
    for app in APPS:
        lab_exec(app, "rm -rf " + " ".join(f"/opt/fleet-app/releases/{version}" for version in BROKEN))
    with Load(**BESIDE_A_RUN) as load:
        time.sleep(2)
        for version, kind in kinds.items():
            t0 = time.monotonic()
            artifact = tmp_path / "releases" / f"fleet-app-{version}.tar.gz"
            proc = deploy(
                "-e", f"app_release_version={version}", "-e", f"app_release_url={artifact}", "-e", "app_gate_timeout=5"
            )
            out = proc.stdout + proc.stderr
            print(f"broken release {version} ({kind}): {time.monotonic() - t0:.1f} s; {load.summary(t0)}")
            assert proc.returncode != 0, out[-4000:]
            # The first batch (one server per cell) failed, went back and is UP; the
            # others never switched.
            message = " ".join(out.split())
            for first in ("app1", "app3"):
                assert f"{first}: release {version} {failure[kind]}" in message, out[-4000:]
                assert f"It runs {CURRENT} again, back in lb" in message, out[-4000:]
            assert versions() == dict.fromkeys(APPS, CURRENT)
            # Every server runs a release that exists, and is UP in its LB.
            for app in APPS:
                assert lab_exec(app, "cat /opt/fleet-app/current/INSTALLED").strip() == CURRENT, app
            assert_every_server_up()
            held = releases_held()
            # Staged everywhere at once, beside the running release; never more than three.
            assert all(version in names and CURRENT in names for names in held.values()), held
            assert all(len(names) <= RELEASES_KEEP for names in held.values()), held
        time.sleep(2)
    print(f"three broken releases: {load.summary()}")
    assert load.failed() == [], f"{len(load.failed())} failed: {load.failed()[:5]}"
    assert len(load.results) > FLOOR_BESIDE_A_RUN
    # The oldest broken one made room for the third.
    assert all(set(names) == {CURRENT, *BROKEN[1:]} for names in releases_held().values()), releases_held()
    assert served_versions() == {CURRENT}


def staged_anywhere(version: str) -> list[str]:
    """The app servers with a directory for ``version`` under their releases."""
    return [app for app, held in releases_held().items() if version in held]


# Before the rolling deploy: NEXT is staged nowhere yet, so "nothing staged" is visible.
def test_a_bad_variable_on_one_app_server_stops_the_run_before_any_is_staged(releases):
    # Good on three servers, out of range on app3 (extra vars are templated per host).
    bad = "{{ 0 if inventory_hostname == 'app3' else 1.5 }}"
    proc = deploy("-e", f"app_release_version={NEXT}", "-e", f"app_db_connect_timeout={bad}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert re.search(r"fatal: \[app3\].*?app_db_connect_timeout", out, flags=re.S), out[-4000:]
    assert "PLAY [Stage the release on the app servers]" not in out, out[-4000:]
    assert staged_anywhere(NEXT) == []
    assert drained(out) == []
    assert versions() == dict.fromkeys(APPS, CURRENT)


@contextmanager
def socket_unreadable(lb: str) -> Iterator[None]:
    """The LB's admin socket replaced by a plain file (HAProxy keeps serving on the socket,
    moved aside), as a broken or stale socket leaves it."""
    sock = "/run/haproxy/admin.sock"
    lab_exec(lb, f"mv {sock} {sock}.aside && echo stale > {sock}")
    try:
        yield
    finally:
        lab_exec(lb, f"rm -f {sock} && mv {sock}.aside {sock}")


def test_an_lb_that_cannot_be_read_stops_the_deploy_before_any_change(releases):
    with socket_unreadable("lb1"):
        proc = deploy("-e", f"app_release_version={NEXT}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    message = " ".join(out.split())
    assert "Cannot read the server states of lb1 (/run/haproxy/admin.sock:" in message, out[-4000:]
    assert "Nothing was changed" in message
    assert "PLAY [Stage the release on the app servers]" not in out, out[-4000:]
    assert staged_anywhere(NEXT) == []
    assert drained(out) == []
    assert versions() == dict.fromkeys(APPS, CURRENT)
    assert_every_server_up()


def fleet_deploy(*args: str) -> subprocess.CompletedProcess[str]:
    """`bin/fleet deploy` as an operator runs it (Mitogen's strategy, its default)."""
    cmd = [str(ROOT / "bin" / "fleet"), "deploy", *args]
    return subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=900)


@pytest.fixture(scope="module")
def recorded_release() -> Iterator[Path]:
    """The lab inventory's release file, as it was before the module whatever happens."""
    path = release_file(INVENTORY)
    before = path.read_text()
    yield path
    path.write_text(before)


def assert_app_tier_agrees_with_the_repository(reports: Path) -> None:
    """The drift check of the app tier exits 0, and its correction has nothing to change."""
    rc, report, out = drift(reports, "--limit", "app", "--tags", "app", "--correct")
    assert rc == 0, out[-4000:]
    assert report["hosts_checked"] == len(APPS), report["summary"]
    assert report["hosts_with_drift"] == report["hosts_failed"] == [], report["summary"]
    assert "[drift] corrected" not in out, out[-4000:]
    assert not list(reports.glob("*-check/correct.log")), "the correction ran"


def owing_a_restart() -> list[str]:
    """The app servers whose note of an owed restart is there (roles/app/tasks/restart.yml)."""
    return [app for app in APPS if lab_exec(app, "test -e /opt/fleet-app/restart-owed && echo yes || true").strip()]


def killed_once_drained(server: str, lb: str, *args: str) -> None:
    """`bin/fleet deploy *args`, killed with everything it started (a lost controller)
    as soon as ``lb`` has drained ``server``: before that server's restart is done."""
    cmd = [str(ROOT / "bin" / "fleet"), "deploy", *args]
    with subprocess.Popen(
        cmd, cwd=ROOT, env=ansible_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    ) as proc:
        try:
            left = wait_until(lambda: haproxy_servers(lb)[server] != "UP" or proc.poll() is not None, 300, 0.1)
            assert left, f"{lb} never drained {server}"
            assert proc.poll() is None, "the deploy ended before it drained the server"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)


def test_bin_fleet_deploy_under_load_fails_no_request_and_the_drift_check_agrees(releases, recorded_release, tmp_path):
    """First killed once lb1 drained app1, as a lost controller leaves it: app1 out of
    its LB, current on the new release, the old process running. The same command run
    again has nothing to change on app1 but the restart it owes, and finishes it."""
    assert set(versions().values()) == {CURRENT}
    with Load(**BESIDE_A_RUN) as load:
        time.sleep(3)
        t0 = time.monotonic()
        killed_once_drained("app1", "lb1", NEXT)
        left = {"lb1": haproxy_servers("lb1")["app1"], "owed": owing_a_restart(), "current": versions()["app1"]}
        t1 = time.monotonic()
        proc = fleet_deploy(NEXT)
        took = time.monotonic() - t1
        time.sleep(2)
    out = proc.stdout + proc.stderr
    print(f"killed once lb1 drained app1, after {t1 - t0:.1f} s, leaving {left}")
    assert left["lb1"] != "UP", left
    assert "app1" in left["owed"], left
    assert left["current"] == NEXT, left
    assert proc.returncode == 0, out[-4000:]
    before, during = load.summary(0, t0), load.summary(t0, t1 + took)
    print(f"bin/fleet deploy {NEXT} to {len(APPS)} app servers: {took:.1f} s; before: {before}; during: {during}")
    assert load.failed() == [], f"{len(load.failed())} failed: {load.failed()[:5]}"
    assert len(load.since(t1)) > FLOOR_BESIDE_A_RUN
    # app1 owed its restart and nothing else: restarted through lb1 like a change.
    assert "app : resume | Restart the server an earlier run left unfinished" in out, out[-4000:]
    assert owing_a_restart() == []
    # One server per cell at a time: app1 and app3 first (each drained unless the killed
    # run had already drained it), then app2 and app4.
    batches = drained(out)
    assert len(batches) == 2, batches
    assert set(batches[0]) <= {"app1", "app3"}, batches
    assert batches[1] == ["app2", "app4"], batches
    assert versions() == dict.fromkeys(APPS, NEXT)
    assert served_versions() == {NEXT}
    assert_every_server_up()
    # Recorded where the inventory reads it, with the release it replaced.
    assert read_release(recorded_release) == {"app_release_version": NEXT, "fleet_release_previous": CURRENT}
    assert_app_tier_agrees_with_the_repository(tmp_path / "after-deploy")


def test_bin_fleet_deploy_rollback_under_load_fails_no_request_and_the_drift_check_agrees(
    releases, recorded_release, tmp_path
):
    assert read_release(recorded_release)["fleet_release_previous"] == CURRENT
    with Load(**BESIDE_A_RUN) as load:
        time.sleep(2)
        t0 = time.monotonic()
        proc = fleet_deploy("--rollback")
        took = time.monotonic() - t0
        time.sleep(2)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    print(f"bin/fleet deploy --rollback: {took:.1f} s; {load.summary()}")
    assert load.failed() == [], f"{len(load.failed())} failed: {load.failed()[:5]}"
    assert len(load.since(t0)) > FLOOR_BESIDE_A_RUN
    # Nothing shipped: each server ran the release it had installed.
    assert not re.findall(r"^(?:ok|changed): ", task_output(out, "release | Ship the release artifact"), flags=re.M)
    assert versions() == dict.fromkeys(APPS, CURRENT)
    assert served_versions() == {CURRENT}
    assert_every_server_up()
    assert read_release(recorded_release) == {"app_release_version": CURRENT, "fleet_release_previous": ""}
    assert_app_tier_agrees_with_the_repository(tmp_path / "after-rollback")
    # A second one has nothing recorded to go back to: refused before anything runs.
    again = fleet_deploy("--rollback")
    assert again.returncode == 2, again.stderr
    assert f"no previous release is recorded (the fleet runs {CURRENT})" in again.stderr


@contextmanager
def requests_in_flight(lb: str, count: int, seconds: int) -> Iterator[Callable[[], list[str]]]:
    """``count`` writes sent from web1 straight to ``lb``, each body a byte a second for
    about ``seconds`` s (below gunicorn's 30 s worker timeout), so each holds a session
    on an app server meanwhile; yields what reads their HTTP statuses once they end."""
    port = yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text())["fleet_port_lb_frontend"]
    body = json.dumps({"name": "s" * (seconds - 12)})
    assert len(body) == seconds
    url = f"http://{container_ip(lb)}:{port}/items"
    for n in range(count):
        lab_exec(
            "web1",
            f"rm -f /tmp/slow.{n}; setsid nohup curl -sS -m 60 --limit-rate 1 -o /dev/null -w '%{{http_code}}' "
            f"-H 'Content-Type: application/json' --data-binary \"$1\" {url} > /tmp/slow.{n} 2>&1 &",
            args=(body,),
        )

    def statuses() -> list[str]:
        assert wait_until(lambda: not lab_exec("web1", "pgrep -x curl || true").strip(), timeout=seconds + 30)
        return [lab_exec("web1", f"cat /tmp/slow.{n}").strip() for n in range(count)]

    try:
        yield statuses
    finally:
        lab_exec("web1", "pkill -x curl || true")


def main_pid(app: str) -> str:
    return lab_exec(app, "systemctl show -P MainPID fleet-app").strip()


def test_a_drain_that_runs_out_of_time_leaves_the_server_on_its_release_and_serving(releases):
    """Requests still in flight on app1 when its drain times out: app1 is not restarted
    (that would cut them), goes back to the release it runs and back in its LB, and the
    rollout stops naming it; the requests complete."""
    pid = main_pid("app1")
    with requests_in_flight("lb1", count=2, seconds=18) as statuses:
        # Round robin: one on app1, one on app2, each of their two workers' one (the
        # other answers lb1's checks and the cell's clients meanwhile).
        assert wait_until(lambda: haproxy_sessions("lb1").get("app1", 0) > 0, timeout=10)
        proc = deploy("-e", f"app_release_version={NEXT}", "-e", "app_drain_timeout=3", "--limit", "app1")
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-4000:]
        message = " ".join(out.split())
        assert re.search(
            r"app1: \d+ request\(s\) still in flight after 3 s of draining in lb1, so it was not restarted\. "
            rf"It runs {re.escape(CURRENT)} as before \(current points at it again\); back in lb1\.",
            message,
        ), out[-4000:]
        assert main_pid("app1") == pid
        assert versions()["app1"] == CURRENT
        assert haproxy_servers("lb1")["app1"] == "UP"
        assert statuses() == ["201"] * 2


def test_a_config_change_that_fails_the_gate_leaves_the_server_out_of_its_lb(releases):
    """A change of configuration only (no other release to go back to) that breaks writes: a
    wrong write password. The server still answers /healthz with 200 ("degraded": reads
    serve), but writes worked before its restart and not after, so it fails its gate
    (filter_plugins/fleet_gate.py): the first batch stays drained, the run stops naming
    each server and what it lost, the rest serve. The same change run again finds them
    owing their restart, already on the bad password (no write before it): their peers
    write, so they fail again and stay out. The next good run puts them back."""
    bad = ("-e", "app_db_write_password=not-the-password", "-e", "app_gate_timeout=5")
    with Load(**BESIDE_A_RUN) as load:
        time.sleep(2)
        broken = deploy(*bad)
        drained_after = {lb: drained_in(lb) for lb in ("lb1", "lb2")}
        states = all_up()
        again = deploy(*bad)
        drained_again = {lb: drained_in(lb) for lb in ("lb1", "lb2")}
        fixed = deploy()
        time.sleep(2)
    out = broken.stdout + broken.stderr
    print(f"config change failing the gate, then mended: {load.summary()}")
    assert broken.returncode != 0, out[-4000:]
    message = " ".join(out.split())
    for first in ("app1", "app3"):
        assert re.search(
            rf"{first}: release {re.escape(CURRENT)} failed its gate \(GET /healthz within 5 s: "
            r"answered 200 degraded: write down, which worked before the restart\)\. "
            r"There was no previous release to go back to; it stays out of its LB\.",
            message,
        ), out[-4000:]
    assert "It runs" not in message
    # Out of their LBs (drained: whatever their health checks say), the others UP.
    assert drained_after == {"lb1": ["app1"], "lb2": ["app3"]}, drained_after
    assert (states["lb1"]["app2"], states["lb2"]["app4"]) == ("UP", "UP"), states
    again_out = again.stdout + again.stderr
    assert again.returncode != 0, again_out[-4000:]
    message = " ".join(again_out.split())
    assert "app : resume | Restart the server an earlier run left unfinished" in again_out, again_out[-4000:]
    for first, peer in (("app1", "app2"), ("app3", "app4")):
        assert re.search(
            rf"{first}: release {re.escape(CURRENT)} failed its gate \(GET /healthz within 5 s: "
            rf"answered 200 degraded: write down, which works on {peer}\)\.",
            message,
        ), again_out[-4000:]
    assert drained_again == drained_after, drained_again
    # The next good run changes them first (refused before: their peers would have been
    # the last UP servers) and puts them back.
    assert fixed.returncode == 0, (fixed.stdout + fixed.stderr)[-4000:]
    assert {lb: drained_in(lb) for lb in ("lb1", "lb2")} == {"lb1": [], "lb2": []}
    assert load.failed() == [], f"{len(load.failed())} failed: {load.failed()[:5]}"
    assert len(load.results) > FLOOR_BESIDE_A_RUN
    assert_every_server_up()


@pytest.fixture
def app2_in_maint() -> Iterator[None]:
    """app2 put in maintenance by hand in lb1, as an operator does."""
    haproxy_command("lb1", f"set server {haproxy_backends()['lb1']}/app2 state maint")
    try:
        yield
    finally:
        haproxy_command("lb1", f"set server {haproxy_backends()['lb1']}/app2 state ready")
    assert wait_until(lambda: haproxy_servers("lb1")["app2"] == "UP", timeout=30)


def test_a_rollout_that_would_drain_the_last_up_server_is_refused_before_any_change(releases, app2_in_maint):
    proc = deploy("-e", f"app_release_version={NEXT}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "draining app1 would leave the LB of cell_a with no UP server" in out, out[-4000:]
    # Refused in the plan: no server was drained, switched or restarted.
    assert drained(out) == []
    assert versions() == dict.fromkeys(APPS, CURRENT)
    assert haproxy_servers("lb1")["app1"] == "UP"


def test_a_server_gone_out_after_the_plan_stops_its_batch_before_anything_changes(releases):
    """app2 put in MAINT once the plan has read the LBs (while the release is staged): the
    batch's own check, before anything on app1 changes, refuses to take lb1's last UP server."""
    cmd = ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / "app.yml")]
    cmd += ["-e", f"app_release_version={NEXT}"]
    env = ansible_env(**engine_env("mitogen"))
    backend = haproxy_backends()["lb1"]
    lines = []
    try:
        with subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("PLAY [Stage the release on the app servers]"):
                    haproxy_command("lb1", f"set server {backend}/app2 state maint")
        out = "".join(lines)
        assert "PLAY [Stage the release on the app servers]" in out, out[-4000:]
        assert proc.returncode != 0, out[-4000:]
        message = " ".join(out.split())
        assert "app1 is UP in lb1, and no server of backend" in message, out[-4000:]
        assert "app2 MAINT" in message
        assert "Nothing was changed on it" in message
        # Refused before the batch's configuration or switch: app1 and app3 (same batch) as they were.
        assert "TASK [app : configure |" not in out, out[-4000:]
        assert drained(out) == []
        assert versions() == dict.fromkeys(APPS, CURRENT)
    finally:
        haproxy_command("lb1", f"set server {backend}/app2 state ready")
    assert wait_until(lambda: haproxy_servers("lb1")["app2"] == "UP", timeout=30)


def test_a_server_in_maint_is_changed_and_left_in_maint(releases, app2_in_maint, tmp_path):
    """The operator's MAINT outlasts a deploy and a rollback of that server: it is
    restarted and gated without a drain, and never put back in its LB."""
    for extra in ([], ["-e", "app_rollback=true"]):
        proc = deploy("-e", f"app_release_version={NEXT}", *extra, "--limit", "app2")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert not any(drained(out)), out[-4000:]
        assert haproxy_servers("lb1")["app2"] == "MAINT"
        # Switched and restarted: the run checks that the server answers with that release.
        assert versions()["app2"] == (CURRENT if extra else NEXT)
        assert "HANDLER [app : restart | Restart the app]" in out, out[-4000:]
        if not extra:
            # A deploy with a plain -e leaves the repository's release file alone: the
            # drift check reports app2 as what it is, a server on another release.
            rc, report, out = drift(tmp_path, "--limit", "app2", "--tags", "app")
            assert rc == 2, out[-4000:]
            assert report["hosts_with_drift"] == ["app2"], report["summary"]
            switch = [
                c for c in report["hosts"]["app2"]["changes"] if c["task"].endswith("Point current at the release")
            ]
            assert len(switch) == 1, report["hosts"]["app2"]["changes"]
            assert f"releases/{NEXT}" in switch[0]["diff"], switch[0]
            assert f"releases/{CURRENT}" in switch[0]["diff"], switch[0]


def site(*extra: str) -> subprocess.CompletedProcess[str]:
    return playbook("site.yml", *extra)


def test_an_lb_and_a_web_setting_applied_by_site_under_load_fail_no_request():
    scope = ["--tags", "lb,web", "--limit", "lb,web"]
    changed = ["-e", "haproxy_timeout_client=31s", "-e", "nginx_keepalive_timeout=66s"]
    with Load(**BESIDE_A_RUN) as load:
        time.sleep(2)
        applied = site(*scope, *changed)
        haproxy_cfg = lab_exec("lb2", "cat /etc/haproxy/haproxy.cfg")
        nginx_conf = lab_exec("web3", "cat /etc/nginx/nginx.conf")
        restored = site(*scope)
        time.sleep(2)
    print(f"lb and web settings changed and restored by site.yml: {load.summary()}")
    for proc in (applied, restored):
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # Both reloads happened: the settings were on the hosts in between.
    assert "timeout client 31s" in haproxy_cfg
    assert "keepalive_timeout 66s" in nginx_conf
    assert "changed=0" not in re.search(r"^lb1 .*$", applied.stdout, flags=re.M)[0]
    assert load.failed() == [], f"{len(load.failed())} failed: {load.failed()[:5]}"
    assert len(load.since(0)) > FLOOR_BESIDE_A_RUN
    assert "timeout client 31s" not in lab_exec("lb2", "cat /etc/haproxy/haproxy.cfg")
