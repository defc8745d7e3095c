"""fleet under ansible-runner, the engine AWX / AAP run jobs with: a check job of site.yml
over the lab, set up as a job template would set it up."""

from __future__ import annotations

import json
import os
import sys

import ansible_runner
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.lab

# A fleet host (site.yml's first play, base) and the ELB stand-in (its last).
JOB_HOSTS = ["elb", "web1"]


def test_a_check_job_of_site_yml_runs_under_ansible_runner_and_reports_no_drift(tmp_path, monkeypatch, hostvars):
    # AWX starts ansible-playbook in the project checkout with no ANSIBLE_CONFIG:
    # the project's ansible.cfg must be found from the working directory alone.
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    for name in ("ANSIBLE_STRATEGY", "ANSIBLE_STRATEGY_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    reports = tmp_path / "drift"
    job = tmp_path / "job"
    job.mkdir()
    result = ansible_runner.run(
        private_data_dir=str(job),
        project_dir=str(ROOT),
        playbook="playbooks/site.yml",
        inventory=str(ROOT / "inventories" / "lab"),
        # The first play and the last, each on a host of its own (test_drift and test_tags
        # check all of site.yml on every tier): what AWX runs and stores, at a fraction of
        # the whole lab's cost (issue 27).
        cmdline=f"--check --diff --tags base,elb --limit {','.join(JOB_HOSTS)}",
        # What the job template's environment (or the EE) sets.
        # The stock strategy, as AWX runs a job: the lab was built with Mitogen's, and
        # this finds it converged all the same (the two engines agree).
        envvars={"ANSIBLE_CALLBACKS_ENABLED": "fleet_drift", "FLEET_DRIFT_DIR": str(reports)},
        quiet=True,
    )
    hosts = sorted(JOB_HOSTS)
    assert set(hosts) <= set(hostvars)
    assert result.status == "successful", result.stdout.read()[-3000:]
    assert result.rc == 0
    assert sorted(result.stats["ok"]) == hosts
    assert result.stats["changed"] == result.stats["failures"] == result.stats["dark"] == {}
    # The job's events are what AWX stores and shows, task by task.
    events = [e["event"] for e in result.events]
    assert events.count("runner_on_ok") >= 25 + 5  # web1's base play, the ELB stand-in's play
    assert events[-1] == "playbook_on_stats"
    # And fleet's drift report is written by the project's callback, as with bin/fleet drift.
    report = json.loads((reports / "drift.json").read_text())
    assert report["hosts_checked"] == len(hosts)
    assert report["hosts_with_drift"] == report["hosts_unreachable"] == report["hosts_failed"] == []
