"""A drift run never says "clean" when it checked nothing: the callback and
scripts/drift.py on real ansible-playbook runs over local hosts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from scripts import drift
from tests.conftest import ROOT, run

INVENTORY = """
all:
  hosts:
    h1: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
    h2: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
    h3: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
    h4: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
"""

# Three plays, like site.yml's tiers. The second stops every host when one fails,
# as the db play does (any_errors_fatal); the third never runs then.
PLAYBOOK = """
- name: First tier
  hosts: all
  gather_facts: false
  tags: [first]
  tasks:
    - name: Drift on h1
      ansible.builtin.command: "true"
      check_mode: false
      changed_when: inventory_hostname == 'h1'
    - name: A loop that would change two items on h2
      ansible.builtin.command: "true"
      check_mode: false
      changed_when: inventory_hostname == 'h2'
      loop: [a, b]
- name: Second tier, fatal errors
  hosts: all
  gather_facts: false
  any_errors_fatal: ANY_ERRORS_FATAL
  tags: [second]
  tasks:
    - name: Fail on h3
      ansible.builtin.fail:
        msg: broken on purpose
      when: inventory_hostname == 'h3' and (fail_h3 | default(true) | bool)
    - name: Reached only when nothing failed
      ansible.builtin.command: "true"
      check_mode: false
      changed_when: false
- name: Third tier
  hosts: all:!h3
  gather_facts: false
  tags: [third]
  tasks:
    - name: Last check
      ansible.builtin.command: "true"
      check_mode: false
      changed_when: false
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "site.yml").write_text(PLAYBOOK.replace("ANY_ERRORS_FATAL", "true"))
    return tmp_path


def check(project: Path, *args: str, selected: list[str] | None = None) -> dict:
    """A check run of the test playbook with the drift callback; its drift.json."""
    out = project / "report"
    env = {"ANSIBLE_CALLBACKS_ENABLED": "fleet_drift", "FLEET_DRIFT_DIR": str(out)}
    if selected is not None:
        (project / "selected.json").write_text(json.dumps(selected))
        env["FLEET_DRIFT_SELECTED"] = str(project / "selected.json")
    cmd = ["ansible-playbook", "-i", str(project / "inventory.yml"), str(project / "site.yml"), "--check", *args]
    run(cmd, cwd=ROOT, **env)
    return json.loads((out / "drift.json").read_text())


def test_hosts_stopped_by_any_errors_fatal_are_not_checked_never_clean(project):
    report = check(project)
    assert report["hosts_failed"] == ["h3"]
    assert report["hosts_not_checked"] == ["h1", "h2", "h4"]
    assert report["stopped_in"] == "Second tier, fatal errors"
    # h4 had no drift in the tiers that ran, but the third tier never ran: not clean.
    assert report["hosts"]["h4"]["status"] == "not checked"
    assert "stopped in play 'Second tier, fatal errors'" in report["hosts"]["h4"]["not_checked"]
    # h1's drift is still reported, and it is still not checked to the end.
    assert report["hosts"]["h1"]["status"] == "drift"
    assert "not_checked" in report["hosts"]["h1"]
    assert report["summary"].endswith(", 3 not checked to the end")
    assert drift.exit_status(report) == 1
    markdown = (project / "report" / "drift.md").read_text()
    assert "## h4: not checked\n- **not checked to the end**: the run stopped in play" in markdown
    assert "Clean: none" in markdown


def test_a_failure_without_any_errors_fatal_leaves_the_others_checked(project):
    """The control case: the other hosts run every play and are clean or drift."""
    (project / "site.yml").write_text(PLAYBOOK.replace("ANY_ERRORS_FATAL", "false"))
    report = check(project)
    assert report["hosts_failed"] == ["h3"]
    assert report["hosts_not_checked"] == []
    assert report["stopped_in"] is None
    assert report["hosts"]["h2"]["status"] == "drift"
    assert report["hosts"]["h4"]["status"] == "clean"


def test_each_change_is_counted_once_loop_items_not_again_as_the_loop(project):
    report = check(project, "-e", "fail_h3=false")
    assert drift.exit_status(report) == 2
    changes = report["hosts"]["h2"]["changes"]
    assert [c.get("item") for c in changes] == ["a", "b"]
    assert report["summary"] == "4 hosts checked: 2 with drift (3 changes), 0 failed, 0 unreachable"
    assert report["hosts"]["h3"]["status"] == "clean"


def test_a_tag_that_matches_no_task_checks_nothing_and_says_so(project):
    # No task ran: no host answered, so the hosts drift.py selected are named.
    report = check(project, "--tags", "no_such_tag", selected=["h1", "h2", "h3", "h4"])
    assert report["hosts_not_checked"] == ["h1", "h2", "h3", "h4"]
    assert {h["not_checked"] for h in report["hosts"].values()} == {"no task matches --tags no_such_tag"}
    assert report["summary"].endswith("; nothing was checked: no task matches --tags no_such_tag")
    assert drift.exit_status(report) == 1


def test_tags_that_leave_some_hosts_alone_are_not_a_failure(project):
    """--tags third runs only the tier h3 is not in: h3 is rightly left alone, not
    "not checked", and the others are checked."""
    report = check(project, "--tags", "third", selected=["h1", "h2", "h3", "h4"])
    assert "h3" not in report["hosts"]
    assert report["hosts_not_checked"] == []
    assert report["hosts_checked"] == 3
    assert report["no_task_ran"] == ""
    assert drift.exit_status(report) == 0


@pytest.mark.parametrize(
    ("inventory", "limit", "says"),
    [
        ("/nonexistent/inventory", None, "failed to load"),
        (None, "no_such_host", "no host selected by"),
    ],
    ids=["inventory-missing", "limit-matches-nothing"],
)
def test_drift_exits_1_when_the_inventory_fails_or_selects_nobody(project, capsys, monkeypatch, inventory, limit, says):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    argv = ["-i", inventory or str(project / "inventory.yml"), "--reports", str(project / "reports")]
    argv += ["--limit", limit] if limit else []
    assert drift.main(argv) == 1
    out = capsys.readouterr().out
    assert says in out
    assert "nothing checked" in out
