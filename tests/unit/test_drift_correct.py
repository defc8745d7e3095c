"""`bin/fleet drift --correct` converges only the hosts that need it, then checks again the
hosts it corrected and every one the check did not find clean."""

from __future__ import annotations

from scripts.drift import exit_status, group_members, hosts_to_correct, hosts_to_recheck
from scripts.drift_report import finish, markdown, merge_recheck

# ansible-inventory --list of a small two-cell fleet (cells nest tiers, as in the lab).
INVENTORY = {
    "_meta": {"hostvars": {}},
    "all": {"children": ["ungrouped", "db", "web", "cell_a"]},
    "db": {"children": ["db_primary", "db_replicas"]},
    "db_primary": {"hosts": ["primary"]},
    "db_replicas": {"hosts": ["replica1", "replica2"]},
    "web": {"hosts": ["web1", "web2"]},
    "cell_a": {"hosts": ["web1", "replica1"]},
}


def report(drift=(), failed=(), unreachable=()) -> dict:
    return {"hosts_with_drift": list(drift), "hosts_failed": list(failed), "hosts_unreachable": list(unreachable)}


def test_groups_include_their_children_hosts():
    groups = group_members(INVENTORY)
    assert groups["db"] == {"primary", "replica1", "replica2"}
    assert groups["all"] == {"primary", "replica1", "replica2", "web1", "web2"}
    assert groups["cell_a"] == {"web1", "replica1"}


def test_only_drifted_and_failed_hosts_are_corrected():
    groups = group_members(INVENTORY)
    assert hosts_to_correct(report(drift=["web2"], failed=["web1"]), groups) == ["web1", "web2"]


def test_a_replica_is_corrected_with_its_primary():
    groups = group_members(INVENTORY)
    assert hosts_to_correct(report(drift=["replica2", "web1"]), groups) == ["primary", "replica2", "web1"]


def test_the_primary_alone_does_not_pull_in_the_replicas():
    groups = group_members(INVENTORY)
    assert hosts_to_correct(report(drift=["primary"]), groups) == ["primary"]


def test_unreachable_hosts_are_not_corrected():
    groups = group_members(INVENTORY)
    assert hosts_to_correct(report(unreachable=["web2"]), groups) == []
    assert hosts_to_correct(report(drift=["web1"], unreachable=["web2"]), groups) == ["web1"]


def host(status: str = "clean", changes: int = 0, **extra) -> dict:
    changed = [{"role": "base", "task": f"t{i}", "item": "", "diff": ""} for i in range(changes)]
    return {"status": status, "changes": changed, "errors": [], "tasks_ok": 30, **extra}


def run_report(hosts: dict, **extra) -> dict:
    base = {"started": "2026-12-07T06:00:00Z", "duration_s": 100.0, "stopped_in": None, "no_task_ran": None}
    return finish({**base, "hosts": hosts, **extra})


def test_the_recheck_covers_the_corrected_hosts_and_every_one_not_found_clean():
    checked = run_report(
        {
            "web1": host("drift", 2),
            "web2": host(),
            "primary": host(),
            "replica2": host("drift", 1),
            "lb1": host("unreachable", tasks_ok=3),
            "app1": host("not checked", not_checked="no task ran on it"),
        }
    )
    assert hosts_to_recheck(checked, ["primary", "replica2", "web1"]) == ["app1", "lb1", "primary", "replica2", "web1"]


def test_the_report_after_a_correction_is_the_recheck_over_the_check():
    checked = run_report({"web1": host("drift", 2), "web2": host(), "replica2": host("drift", 1), "primary": host()})
    assert checked["summary"] == "4 hosts checked: 2 with drift (3 changes), 0 failed, 0 unreachable"
    rechecked = run_report({"web1": host(), "replica2": host(), "primary": host()}, duration_s=40.0)
    merged = merge_recheck(checked, rechecked)
    assert merged["hosts_checked"] == 4
    assert merged["hosts_with_drift"] == merged["hosts_failed"] == merged["hosts_unreachable"] == []
    assert merged["rechecked"] == ["primary", "replica2", "web1"]
    assert exit_status(merged) == 0
    assert (merged["started"], merged["duration_s"]) == ("2026-12-07T06:00:00Z", 140.0)
    assert "Checked again after the correction: primary, replica2, web1" in markdown(merged)


def test_what_the_recheck_still_finds_decides_the_exit_status():
    checked = run_report({"web1": host("drift", 1), "web2": host(), "lb1": host("unreachable", tasks_ok=3)})
    still = merge_recheck(checked, run_report({"web1": host("drift", 1), "lb1": host("unreachable", tasks_ok=3)}))
    assert (still["hosts_with_drift"], still["hosts_unreachable"]) == (["web1"], ["lb1"])
    assert exit_status(still) == 1
    back = merge_recheck(checked, run_report({"web1": host(), "lb1": host()}))
    assert exit_status(back) == 0
    # A selected host that never answered the recheck is listed, not counted as checked.
    lost = merge_recheck(checked, run_report({"web1": host(), "lb1": {**host("not checked"), "not_checked": "no"}}))
    del lost["hosts"]["lb1"]["tasks_ok"]
    assert exit_status(finish(lost)) == 1
    assert finish(lost)["hosts_checked"] == 2
