"""The PLAY RECAP reader that the lab, molecule verifiers and container tests share."""

from __future__ import annotations

import yaml

from scripts.recap import host_tasks, hosts_with_drift, parse_recap
from tests.conftest import ROOT

OUTPUT = """
PLAY RECAP *********************************************************************
app1                       : ok=51   changed=1    unreachable=0    failed=0    skipped=4    rescued=0    ignored=0
db-primary                 : ok=40   changed=0    unreachable=0    failed=0    skipped=9    rescued=0    ignored=0
web3                       : ok=2    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
lb2                        : ok=12   changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
"""


def test_parse_recap_reads_every_host():
    recap = parse_recap(OUTPUT)
    assert recap["app1"] == {"ok": 51, "changed": 1, "unreachable": 0, "failed": 0}
    assert set(recap) == {"app1", "db-primary", "web3", "lb2"}


def test_hosts_with_drift_names_changed_unreachable_and_failed_hosts():
    assert set(hosts_with_drift(parse_recap(OUTPUT))) == {"app1", "web3", "lb2"}


def test_no_recap_means_nothing_to_report():
    assert parse_recap("fatal: [x]: FAILED!") == {}
    assert hosts_with_drift({}) == {}


def test_host_tasks_count_ok_failed_and_skipped_of_every_host():
    # ok (changed is part of it) + failed + skipped: 51+4, 40+9, 2, 12+1.
    assert host_tasks(OUTPUT) == 55 + 49 + 2 + 13
    assert host_tasks("no recap here") == 0


def test_the_no_op_ceiling_is_a_ceiling_above_what_was_measured():
    ceilings = yaml.safe_load((ROOT / "bench" / "ceilings.yml").read_text())
    noop = ceilings["noop_site_host_tasks"]
    assert 0 < noop["measured"] <= noop["ceiling"] < 2 * noop["measured"]
