"""The PLAY RECAP reader that the lab, molecule verifiers and container tests share."""

from __future__ import annotations

from scripts.recap import hosts_with_drift, parse_recap

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
