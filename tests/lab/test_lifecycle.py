"""The lab's own commands: `up` on a running lab is safe and changes nothing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from scripts.recap import host_tasks
from tests.conftest import ROOT, ansible_env
from tests.lab.conftest import assert_private_and_free_of_secrets

pytestmark = pytest.mark.lab


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.lab", *args],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_up_on_a_running_lab_converges_with_no_change(one_of_each_tier):
    # The lab was built with Mitogen's strategy, as this second run is (the stock
    # strategy checks it in test_runner.py, as AWX runs it). It runs with -vvv and
    # --diff: even then no secret reaches its log. On one host of each tier and the
    # hosts every cell shares: every task of site.yml, each as its tier's other hosts
    # run it, in 40 s against 84 s for all fourteen (issue 27); the drift test checks
    # all fourteen, in check mode.
    proc = lab("up", "--engine", "mitogen", "--", "-vvv", "--diff", "--limit", ",".join(one_of_each_tier))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "new: none (all existed)" in proc.stdout
    assert "converge with playbooks/site.yml (engine mitogen): done" in proc.stdout
    summary = re.search(r"converge: (\d+) hosts, changed=(\d+)", proc.stdout)
    assert summary, proc.stdout
    assert int(summary[1]) == len(one_of_each_tier) == 6, proc.stdout
    log_file = ROOT / ".cache" / "lab" / "converge.log"
    log = log_file.read_text()
    assert int(summary[2]) == 0, log[-6000:]
    assert "task path: " in log, "not a verbose log"
    assert_private_and_free_of_secrets([log_file])
    # The work of a no-op run, held to its recorded ceiling: a change that adds tasks
    # per host (or loops over the fleet) shows here, whatever the machine's speed.
    ceiling = yaml.safe_load((ROOT / "bench" / "ceilings.yml").read_text())["noop_site_host_tasks"]
    assert ceiling["hosts"] == len(one_of_each_tier)
    assert host_tasks(log) <= ceiling["ceiling"], f"{host_tasks(log)} host-tasks, ceiling {ceiling['ceiling']}"


def test_status_lists_every_host():
    proc = lab("status")
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines() if line and not line.startswith("[lab]")}
    assert names == {f"web{i}" for i in range(1, 5)} | {"lb1", "lb2", "elb", "primary", "replica1", "replica2"} | {
        f"app{i}" for i in range(1, 5)
    }


def test_ssh_reaches_a_host_as_the_operator():
    proc = lab("ssh", "web1", "id", "-un")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fleet"
