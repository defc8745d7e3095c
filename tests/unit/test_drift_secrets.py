"""A drift run keeps no secret and shares nothing: scripts/drift.py on a real local
ansible-playbook run whose diffs and output show secrets in every common form. The
report and the raw log are masked, and both are 0600 in 0700 directories."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from scripts import drift
from tests.conftest import ROOT

SECRET = "Xy7-never-in-a-log"

PLAYBOOK = f"""
- name: A tier whose diffs and output show secrets
  hosts: all
  gather_facts: false
  vars:
    db_password: "{SECRET}"
  tasks:
    - name: An env file with a password, a DSN URL and a pgpass line (its diff shows them)
      ansible.builtin.copy:
        content: |
          APP_DB_WRITE_PASSWORD="{{{{ db_password }}}}"
          APP_URL=postgresql://app_rw:{{{{ db_password }}}}@primary:5432/app
          primary:5432:app:app_rw:{{{{ db_password }}}}
        dest: "{{{{ playbook_dir }}}}/app.env"
        mode: "0600"
    - name: Output with JSON and key=value forms
      ansible.builtin.debug:
        msg: '{{{{ {{"password": db_password}} | to_json }}}} host=primary password={{{{ db_password }}}}'
"""


def test_reports_and_logs_are_masked_and_private(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "playbooks" / "site.yml").write_text(PLAYBOOK)
    (project / "ansible.cfg").write_text(f"[defaults]\ncallback_plugins = {ROOT / 'callback_plugins'}\n")
    inventory = project / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    h1: {ansible_connection: local, ansible_python_interpreter: "
        '"{{ ansible_playbook_python }}"}\n'
    )
    monkeypatch.setattr(drift, "ROOT", project)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    reports = tmp_path / "reports"
    old_umask = os.umask(0o022)
    try:
        status = drift.main(["-i", str(inventory), "--reports", str(reports), "--engine", "ansible"])
    finally:
        os.umask(old_umask)
    assert status == 2  # the env file would be created: drift

    run_dir = (reports / "latest").resolve()
    files = sorted(p for p in run_dir.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"check.log", "drift.json", "drift.md"}
    log = (run_dir / "check.log").read_text()
    assert "app_rw" in log, log[-2000:]  # the diff and the output are there...
    assert "primary:5432" in log
    for path in files:
        assert SECRET not in path.read_text(), path.name  # ...their secrets are not
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    for directory in (reports, run_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
