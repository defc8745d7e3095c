"""Scheduled drift checks on a control host, checking a fleet host over SSH for real."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import testinfra

from scripts.recap import hosts_with_drift
from scripts.toolchain import wanted_collections

testinfra_hosts = ["drift-control"]

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = json.loads((ROOT / ".cache" / "project" / "fleet-project.json").read_text())
UNIT = "fleet-drift"
USER = "fleet-drift"
HOME = "/var/lib/fleet-drift"
REPORTS = f"{HOME}/reports"
PROJECT = "/opt/fleet/project"
VENV = "/opt/fleet/venv"
INVENTORY = "/etc/fleet-drift/inventory"
INTRUDER = "/etc/sudoers.d/intruder"


@pytest.fixture(scope="module")
def target():
    """The fleet host the scheduled run checks."""
    return testinfra.get_host("docker://drift-target")


def run_dirs(host) -> list[str]:
    """The report directories of the runs, oldest first."""
    out = host.check_output(f"find {REPORTS} -mindepth 1 -maxdepth 1 -type d -name '*-check' -printf '%f\\n'")
    return sorted(out.split())


def service(host, *props: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show -p {','.join(props)} {UNIT}.service")
    return dict(line.split("=", 1) for line in out.splitlines())


def journal_cursor(host) -> str:
    """Where the journal ends now; a run's lines are the ones after it."""
    out = host.check_output("journalctl -n 0 --show-cursor")
    return out.rsplit("-- cursor: ", 1)[1].strip()


def journal_since(host, cursor: str) -> str:
    """What the unit logged after `cursor`, read as the README tells operators to
    (`journalctl -u`), up to the result line. Not by invocation id: journald tags a
    line with the invocation only if it can still read the writer's cgroup, and the
    ExecStopPost echo has often exited by then. The unit name comes from the stream
    itself, so `-u` always finds it. journald may take a moment to store the last lines."""
    deadline = time.monotonic() + 15
    while True:
        journal = host.check_output(f"journalctl -o cat -u {UNIT}.service --after-cursor='{cursor}'")
        if "fleet-drift: result" in journal or time.monotonic() > deadline:
            return journal
        time.sleep(0.5)


def latest_report(host) -> dict:
    return json.loads(host.file(f"{REPORTS}/latest/drift.json").content_string)


def start_run(host):
    """Start the service as the timer does and wait for it to finish; returns the
    result and the journal cursor from before the start."""
    cursor = journal_cursor(host)
    return host.run(f"systemctl start {UNIT}.service"), cursor


def wait_until_idle(host, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = host.run(f"systemctl is-active {UNIT}.service").stdout.strip()
        jobs = host.check_output("systemctl list-jobs --no-legend")
        if state not in ("active", "activating", "deactivating") and UNIT not in jobs:
            return
        time.sleep(1)
    raise AssertionError(f"{UNIT}.service still running after {timeout}s")


def test_check_mode_reports_no_change_on_converged_hosts(check_mode_stats):
    recap, output = check_mode_stats
    assert set(recap) == {"drift-control", "drift-target"}, output
    assert hosts_with_drift(recap) == {}, output


def test_units_pass_systemds_own_checks(host):
    out = host.run(f"systemd-analyze verify /etc/systemd/system/{UNIT}.service /etc/systemd/system/{UNIT}.timer")
    assert out.rc == 0, out.stderr
    assert out.stderr.strip() == ""


def test_timer_is_enabled_and_scheduled(host):
    assert host.check_output(f"systemctl is-enabled {UNIT}.timer") == "enabled"
    assert host.check_output(f"systemctl is-active {UNIT}.timer") == "active"
    # Only the timer (or an operator) starts the service: it has no [Install] section.
    assert host.check_output(f"systemctl is-enabled {UNIT}.service") == "static"
    out = host.check_output(
        f"systemctl show -p TimersCalendar,NextElapseUSecRealtime,RandomizedDelayUSec,Persistent {UNIT}.timer"
    )
    timer = dict(line.split("=", 1) for line in out.splitlines())
    assert "OnCalendar=*-*-01 04:00:00" in timer["TimersCalendar"]
    assert re.match(r"^\w{3} \d{4}-\d{2}-01 04:0\d:\d{2} UTC$", timer["NextElapseUSecRealtime"]), timer
    assert timer["RandomizedDelayUSec"] == "1min"
    assert timer["Persistent"] == "yes"


def test_service_runs_the_drift_check_with_the_configured_arguments(host):
    props = service(host, "Type", "User", "Group", "WorkingDirectory", "Environment", "ExecStart", "TimeoutStartUSec")
    assert (props["Type"], props["User"], props["Group"]) == ("oneshot", USER, USER)
    assert props["WorkingDirectory"] == PROJECT
    assert props["Environment"] == (
        f"PATH={VENV}/bin:/usr/bin:/bin PYTHONUNBUFFERED=1 ANSIBLE_VAULT_PASSWORD_FILE={HOME}/.vault-password"
    )
    argv = re.search(r"argv\[\]=([^;]*) ;", props["ExecStart"]).group(1).strip()
    assert argv == (
        f"{VENV}/bin/python -m scripts.drift -i {INVENTORY} --reports {REPORTS} --keep 2"
        " --limit drift-target --tags base"
    )
    assert props["TimeoutStartUSec"] == "10min"


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", HOME),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
    ],
)
def test_service_is_hardened(host, prop, value):
    assert host.check_output(f"systemctl show -p {prop} --value {UNIT}.service") == value


def test_project_is_the_tree_built_on_the_controller(host):
    sha = MANIFEST["project"]["sha256"]
    link = host.file(PROJECT)
    assert link.is_symlink
    assert link.linked_to == f"/opt/fleet/releases/project/{sha[:16]}"
    # Symlinks stay links (the top-level group_vars reach site.yml through one).
    assert host.file(f"{PROJECT}/playbooks/group_vars").is_symlink
    assert host.check_output(f"readlink {PROJECT}/playbooks/group_vars") == "../group_vars"
    assert host.file(f"{PROJECT}/scripts/drift.py").exists
    for ignored in (".venv", ".git", ".cache/project", ".cache/lab"):
        assert not host.file(f"{PROJECT}/{ignored}").exists, ignored
    # Of the ignored files only the app releases ship: checking app servers needs them.
    releases = sorted(p.name for p in (ROOT / ".cache" / "releases").glob("fleet-app-*.tar.gz*"))
    shipped = sorted(host.run(f"ls {PROJECT}/.cache/releases").stdout.split())
    assert shipped == releases
    # The run reads the code but cannot rewrite it.
    assert host.file(f"{PROJECT}/ansible.cfg").user == "root"
    out = host.run(f"runuser -u {USER} -- touch {PROJECT}/ansible.cfg")
    assert out.rc != 0


def normalized(pins) -> set[str]:
    return {re.sub(r"[-_.]+", "-", p.split("==")[0]).lower() + "==" + p.split("==")[1] for p in pins}


def test_toolchain_is_exactly_the_lock(host):
    lock = MANIFEST["toolchain"]["lock_sha256"]
    assert host.file(VENV).linked_to == f"/opt/fleet/releases/toolchain/{lock[:16]}/venv"
    freeze = host.check_output(f"{VENV}/bin/pip freeze --disable-pip-version-check").split()
    assert normalized(freeze) == normalized(MANIFEST["toolchain"]["requirements"])
    pinned_core = next(p for p in MANIFEST["toolchain"]["requirements"] if p.startswith("ansible-core=="))
    assert f"core {pinned_core.split('==')[1]}" in host.check_output(f"{VENV}/bin/ansible-playbook --version")
    # What a control host runs, not the controller's test tools nor the whole ansible bundle:
    # the collections of requirements.yml (and what they need), as the pinned bundle ships them.
    assert {"ansible", "molecule", "ansible-lint", "moto"}.isdisjoint(p.split("==")[0] for p in freeze)
    listed = json.loads(host.check_output(f"{VENV}/bin/ansible-galaxy collection list --format json"))
    # ansible-core's own (ansible._protomatter) sits inside the ansible package.
    collections = {
        name: info["version"]
        for path, found in listed.items()
        if path.endswith("/site-packages/ansible_collections")
        for name, info in found.items()
    }
    assert set(collections) == {*wanted_collections(), "community.library_inventory_filtering_v1"}, collections


def test_ssh_key_and_known_hosts(host, target):
    key = host.file(f"{HOME}/.ssh/id_fleet_drift")
    assert (key.user, key.group, key.mode) == (USER, USER, 0o600)
    local = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "drift_ed25519").read_text()
    assert hashlib.sha256(key.content_string.strip().encode()).hexdigest() == (
        hashlib.sha256(local.strip().encode()).hexdigest()
    )
    host_key = " ".join(target.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[:2])
    known = host.file(f"{HOME}/.ssh/known_hosts.fleet").content_string
    assert f"drift-target {host_key}" in known
    assert host.file(f"{HOME}/.ssh").mode == 0o700


def test_vault_password_is_the_run_users_only(host):
    password = host.file(f"{HOME}/.vault-password")
    assert (password.user, password.group, password.mode) == (USER, USER, 0o400)
    local = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "vault-password").read_text().strip()
    assert password.content_string.strip() == local
    # The inventory's operator key is vaulted: a clean run below proves it was decrypted.
    group_vars = host.file(f"{INVENTORY}/group_vars/all.yml").content_string
    assert "vault_drift_test_admin_key: !vault |" in group_vars
    assert "ssh-ed25519" not in group_vars


def test_a_run_on_a_clean_fleet_exits_0(host):
    out, cursor = start_run(host)
    assert out.rc == 0, out.stderr
    props = service(host, "Result", "ExecMainStatus")
    assert (props["Result"], props["ExecMainStatus"]) == ("success", "0")
    journal = journal_since(host, cursor)
    assert "[drift] check: 1 hosts checked: 0 with drift (0 changes), 0 failed, 0 unreachable" in journal
    assert "fleet-drift: result success, exit status 0" in journal
    report = latest_report(host)
    assert report["hosts_checked"] == 1
    assert report["hosts"]["drift-target"]["status"] == "clean"
    assert host.file(f"{REPORTS}/latest/drift.md").contains("Clean: drift-target")


def test_drift_fails_the_unit_with_exit_status_2(host, target):
    target.check_output(f"printf 'intruder ALL=(ALL) NOPASSWD: ALL\\n' > {INTRUDER} && chmod 0440 {INTRUDER}")
    out, cursor = start_run(host)
    assert out.rc != 0
    props = service(host, "Result", "ExecMainStatus", "ActiveState")
    assert props == {"Result": "exit-code", "ExecMainStatus": "2", "ActiveState": "failed"}
    journal = journal_since(host, cursor)
    assert "[drift] check: 1 hosts checked: 1 with drift" in journal
    assert "status=2/INVALIDARGUMENT" in journal
    assert "fleet-drift: result exit-code, exit status 2" in journal
    report = latest_report(host)
    assert report["hosts_with_drift"] == ["drift-target"]
    changes = report["hosts"]["drift-target"]["changes"]
    assert any("Remove sudo rules fleet does not know" in c["task"] and INTRUDER in c.get("item", "") for c in changes)
    md = host.file(f"{REPORTS}/latest/drift.md").content_string
    assert "## drift-target: drift" in md
    assert INTRUDER in md


def test_runs_never_overlap_and_only_the_newest_are_kept(host, target):
    target.check_output(f"rm -f {INTRUDER}")
    before = run_dirs(host)
    assert len(before) == 2
    host.check_output(f"systemctl start --no-block {UNIT}.service")
    # The run holds the lock from before it creates its report directory.
    deadline = time.monotonic() + 60
    while set(run_dirs(host)) <= set(before):
        assert time.monotonic() < deadline, "the run never created its report directory"
        time.sleep(0.5)
    # While it runs: the timer firing (another start) merges into the running job,
    # and a manual run finds the lock held.
    host.check_output(f"systemctl start --no-block {UNIT}.service")
    manual = host.run(
        f"runuser -u {USER} -- /bin/sh -c 'cd {PROJECT} && exec {VENV}/bin/python -m scripts.drift"
        f" -i {INVENTORY} --reports {REPORTS} --keep 2'"
    )
    assert manual.rc == 1
    assert "another drift run holds" in manual.stderr
    wait_until_idle(host)
    after = run_dirs(host)
    new = sorted(set(after) - set(before))
    assert len(new) == 1, (before, after)
    # Retention (keep 2): the newest two runs stay, the oldest is gone.
    assert after == [before[-1], new[0]]
    assert host.file(f"{REPORTS}/latest").linked_to == f"{REPORTS}/{new[0]}"
    # The reports hold diffs: only the run's user reads them.
    assert host.file(REPORTS).mode == host.file(f"{REPORTS}/{new[0]}").mode == 0o700
    for name in ("drift.json", "drift.md", "check.log"):
        report = host.file(f"{REPORTS}/{new[0]}/{name}")
        assert (report.user, report.mode) == (USER, 0o600), name
    assert service(host, "Result", "ExecMainStatus") == {"Result": "success", "ExecMainStatus": "0"}


def converge_control_host(*extra: str) -> subprocess.CompletedProcess[str]:
    """Run this scenario's converge.yml on the control host only, with extra arguments."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"),
            "--limit",
            "drift-control",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_bad_schedule_fails_before_any_change(host):
    unit = host.file(f"/etc/systemd/system/{UNIT}.timer").content_string
    proc = converge_control_host("-e", "drift_timer_on_calendar='every tuesday'")
    assert proc.returncode != 0
    assert "drift_timer_on_calendar=every tuesday (Failed to parse calendar" in proc.stderr, proc.stderr[-3000:]
    assert re.search(r"drift-control\s+: ok=\d+\s+changed=0 .*failed=1", proc.stdout), proc.stdout[-3000:]
    assert host.file(f"/etc/systemd/system/{UNIT}.timer").content_string == unit


def build_variant(out: Path, label: str) -> str:
    """Artifacts like the real build's, with one more file in the project: another tree."""
    out.mkdir()
    built = ROOT / ".cache" / "project"
    archive = out / "project.tar.gz"
    with tarfile.open(built / MANIFEST["project"]["archive"]) as src, tarfile.open(archive, "w:gz") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = f"{label}\n".encode()
        info = tarfile.TarInfo("VARIANT")
        info.size, info.mtime = len(data), 315532800
        dst.addfile(info, io.BytesIO(data))
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.rename(out / f"fleet-project-{sha[:16]}.tar.gz")
    (out / MANIFEST["toolchain"]["archive"]).symlink_to(built / MANIFEST["toolchain"]["archive"])
    manifest = {**MANIFEST, "project": {"archive": f"fleet-project-{sha[:16]}.tar.gz", "sha256": sha}}
    (out / "fleet-project.json").write_text(json.dumps(manifest))
    return sha


def trees(host) -> set[str]:
    return set(host.check_output("ls /opt/fleet/releases/project").split())


def test_a_new_build_switches_the_link_and_old_trees_are_pruned(host, tmp_path):
    original = MANIFEST["project"]["sha256"][:16]
    assert trees(host) == {original}
    deployed = []
    for label in ("one", "two"):
        sha = build_variant(tmp_path / label, label)[:16]
        proc = converge_control_host(
            "--tags", "drift_timer_project", "-e", f"drift_timer_artifacts_dir={tmp_path / label}"
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert host.file(PROJECT).linked_to == f"/opt/fleet/releases/project/{sha}"
        assert host.file(f"{PROJECT}/VARIANT").content_string == f"{label}\n"
        deployed.append(sha)
    # drift_timer_releases_keep is 2: the tree in use and the newest other one.
    assert trees(host) == set(deployed)
    proc = converge_control_host("--tags", "drift_timer_project")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert host.file(PROJECT).linked_to == f"/opt/fleet/releases/project/{original}"
    assert trees(host) == {deployed[1], original}
