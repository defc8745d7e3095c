"""bin/fleet deploy's bookkeeping (scripts/deploy.py): what it runs, and that the
inventory's release file changes only after a rollout that passed. The rollout
itself is proven on the lab (tests/lab/test_rollout.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scripts import deploy
from scripts.deploy import BadInput, plan, read_release, record, release_file
from tests.conftest import ROOT

RECORDED = {"app_release_version": "1.2.0", "fleet_release_previous": "1.1.1"}


@pytest.mark.parametrize("inventory", ["lab", "aws"])
def test_every_inventory_records_a_release(inventory):
    found = read_release(release_file(ROOT / "inventories" / inventory))
    assert deploy.VERSION.match(found["app_release_version"])


def test_the_release_file_of_an_inventory_file_is_beside_it():
    aws = ROOT / "inventories" / "aws"
    assert release_file(aws / "fleet.aws_ec2.yml") == release_file(aws) == aws / "group_vars" / "app" / "release.yml"


def test_a_new_release_records_the_one_it_replaced_as_previous():
    target, extra, after = plan(RECORDED, "1.3.0", rollback=False)
    assert target == "1.3.0"
    assert extra == ["-e", "app_release_version=1.3.0"]
    assert after == {"app_release_version": "1.3.0", "fleet_release_previous": "1.2.0"}


def test_a_redeploy_of_the_running_release_keeps_the_previous_one():
    assert plan(RECORDED, "1.2.0", rollback=False)[2] == RECORDED


def test_a_rollback_runs_the_previous_release_installed_and_records_no_previous():
    target, extra, after = plan(RECORDED, None, rollback=True)
    assert target == "1.1.1"
    assert extra == ["-e", "app_release_version=1.1.1", "-e", "app_release_installed_only=true"]
    assert after == {"app_release_version": "1.1.1", "fleet_release_previous": ""}


@pytest.mark.parametrize(
    ("version", "rollback", "expected"),
    [
        ("1.2", False, "not MAJOR.MINOR.PATCH"),
        ("v1.2.0", False, "not MAJOR.MINOR.PATCH"),
        ("1.2.0", True, "not both"),
        (None, False, "not both"),
    ],
)
def test_bad_input_is_refused(version, rollback, expected):
    with pytest.raises(BadInput, match=expected):
        plan(RECORDED, version, rollback)


def test_a_rollback_with_no_previous_release_is_refused_naming_the_running_one():
    with pytest.raises(BadInput, match=r"no previous release is recorded \(the fleet runs 1.2.0\)"):
        plan({**RECORDED, "fleet_release_previous": ""}, None, rollback=True)


@pytest.fixture
def inventory(tmp_path) -> Path:
    """A copy of the lab's release file, recording RECORDED, in an inventory of its own."""
    inv = tmp_path / "inventory"
    path = release_file(inv)
    path.parent.mkdir(parents=True)
    shutil.copy(release_file(ROOT / "inventories" / "lab"), path)
    record(path, *RECORDED.values())
    return inv


def test_record_rewrites_the_values_and_keeps_the_comments(inventory):
    path = release_file(inventory)
    before = path.read_text()
    record(path, "2.0.0", "")
    assert read_release(path) == {"app_release_version": "2.0.0", "fleet_release_previous": ""}
    comments = [line for line in before.splitlines() if line.startswith("#")]
    assert comments
    assert comments == [line for line in path.read_text().splitlines() if line.startswith("#")]


@pytest.fixture
def playbook_exits(tmp_path, monkeypatch):
    """``playbook_exits(rc)``: ansible-playbook on PATH replaced by one that records its
    arguments and exits rc; returns the file its arguments go to."""

    def make(rc: int) -> Path:
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        calls = tmp_path / "calls"
        fake = bindir / "ansible-playbook"
        fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit {rc}\n')
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        return calls

    return make


def test_a_rollout_that_passed_is_recorded(inventory, playbook_exits):
    calls = playbook_exits(0)
    assert deploy.main(["--rollback", "-i", str(inventory), "--engine", "ansible"]) == 0
    assert "app_release_version=1.1.1 -e app_release_installed_only=true" in calls.read_text()
    assert read_release(release_file(inventory)) == {"app_release_version": "1.1.1", "fleet_release_previous": ""}


def test_a_rollout_that_failed_leaves_the_record_as_it_was(inventory, playbook_exits, capsys):
    playbook_exits(2)
    before = release_file(inventory).read_text()
    assert deploy.main(["--rollback", "-i", str(inventory), "--engine", "ansible"]) == 1
    assert release_file(inventory).read_text() == before
    assert "still records 1.2.0" in capsys.readouterr().err


def test_bad_input_runs_nothing(inventory, playbook_exits, capsys):
    calls = playbook_exits(0)
    assert deploy.main(["1.2", "-i", str(inventory), "--engine", "ansible"]) == 2
    assert not calls.exists()
    assert "nothing ran" in capsys.readouterr().err
