"""`bin/fleet drift --correct` converges only the hosts that need it."""

from __future__ import annotations

from scripts.drift import group_members, hosts_to_correct

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
