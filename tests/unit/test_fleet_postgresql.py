"""The PostgreSQL filters: tuning from host facts and names PostgreSQL accepts."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_postgresql import (
    TUNED,
    FilterModule,
    control_state,
    database_name_problem,
    identifier_problem,
    role_name_problem,
    slot_name,
    slot_name_problem,
    split_brain,
    tuning,
    tuning_problem,
)


@pytest.mark.parametrize("name", ["app", "app_rw", "_x", "a" * 63, "replicator", "r2d2"])
def test_good_identifiers(name):
    assert identifier_problem(name) == ""
    assert role_name_problem(name) == ""


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "non-empty"),
        (None, "non-empty"),
        (42, "non-empty"),
        ("a" * 64, "longer than 63"),
        ("App", "must start with a-z"),
        ("9lives", "must start with a-z"),
        ("app-rw", "only a-z"),
        ("app rw", "only a-z"),
        ("app;drop", "only a-z"),
        ("é", "only a-z"),
    ],
)
def test_bad_identifiers(name, reason):
    assert reason in identifier_problem(name)


@pytest.mark.parametrize(("name", "reason"), [("pg_monitor2", "reserved"), ("public", "reserved"), ("all", "reserved")])
def test_reserved_role_names(name, reason):
    assert reason in role_name_problem(name)


@pytest.mark.parametrize("name", ["all", "replication", "template1", "sameuser"])
def test_reserved_database_names(name):
    assert "reserved" in database_name_problem(name)


def test_good_database_name():
    assert database_name_problem("fleet_app") == ""


@pytest.mark.parametrize("name", ["db_replica1", "r1", "0slot", "a" * 63])
def test_good_slot_names(name):
    assert slot_name_problem(name) == ""


@pytest.mark.parametrize(
    ("name", "reason"),
    [("", "non-empty"), ("Replica1", "lower-case"), ("db-replica1", "lower-case"), ("a" * 64, "longer than 63")],
)
def test_bad_slot_names(name, reason):
    assert reason in slot_name_problem(name)


@pytest.mark.parametrize(
    ("host", "slot"),
    [("db-replica1", "db_replica1"), ("DB.Replica-2.lab", "db_replica_2_lab"), ("x" * 80, "x" * 63)],
)
def test_slot_name_from_host(host, slot):
    assert slot_name(host) == slot
    assert slot_name_problem(slot_name(host)) == ""


@pytest.mark.parametrize("host", ["", None, 3])
def test_slot_name_needs_a_host(host):
    with pytest.raises(AnsibleFilterError):
        slot_name(host)


@pytest.mark.parametrize(
    ("memory", "cpus", "expected"),
    [
        # 1 GB, 1 CPU: floors apply.
        (1024, 1, {"max_connections": 100, "shared_buffers_mb": 256, "effective_cache_size_mb": 768}),
        # 16 GB, 8 CPUs.
        (16384, 8, {"max_connections": 200, "shared_buffers_mb": 4096, "effective_cache_size_mb": 12288}),
        # 256 GB, 64 CPUs: ceilings apply.
        (262144, 64, {"max_connections": 500, "maintenance_work_mem_mb": 2048}),
        # Tiny host: shared_buffers never below 128 MB, maintenance_work_mem never below 64 MB.
        (256, 1, {"shared_buffers_mb": 128, "maintenance_work_mem_mb": 64, "work_mem_mb": 4}),
    ],
)
def test_tuning_from_facts(memory, cpus, expected):
    result = tuning(memory, cpus)
    assert set(result) == set(TUNED)
    for key, value in expected.items():
        assert result[key] == value, key
    assert tuning_problem(result, memory) == ""


def test_work_mem_spreads_spare_memory_over_connections():
    result = tuning(16384, 8)
    assert result["work_mem_mb"] == (16384 - 4096) // (3 * 200)


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        ({"shared_buffers_mb": 512}, "shared_buffers_mb", 512),
        ({"max_connections": 42}, "max_connections", 42),
        ({"work_mem_mb": None}, "work_mem_mb", (16384 - 4096) // 600),
    ],
)
def test_overrides_win(overrides, key, value):
    assert tuning(16384, 8, overrides)[key] == value


def test_override_changes_derived_work_mem():
    assert tuning(16384, 8, {"max_connections": 50})["work_mem_mb"] == (16384 - 4096) // 150


@pytest.mark.parametrize(
    ("memory", "cpus", "overrides"),
    [
        (0, 2, None),
        (-1, 2, None),
        ("1024MB", 2, None),
        ("2.5", 2, None),
        (True, 2, None),
        (1024, 0, None),
        (1024, 2, {"shared_buffers": 5}),
        (1024, 2, {"shared_buffers_mb": "lots"}),
        (1024, 2, {"max_connections": 0}),
        (1024, 2, {"max_connections": "0"}),
        (1024, 2, {"max_connections": "80a"}),
        (1024, 2, {"work_mem_mb": 4.0}),
    ],
)
def test_tuning_rejects_bad_input(memory, cpus, overrides):
    with pytest.raises(AnsibleFilterError):
        tuning(memory, cpus, overrides)


def test_tuning_takes_strings_of_digits():
    """Extra vars given as key=value arrive as strings: -e postgresql_max_connections=200 is "200"."""
    assert tuning("16384", "8", {"max_connections": "200", "work_mem_mb": " 16 "}) == tuning(
        16384, 8, {"max_connections": 200, "work_mem_mb": 16}
    )
    assert tuning(16384, 8, {"max_connections": "200"})["max_connections"] == 200


@pytest.mark.parametrize(
    ("memory", "settings", "reason"),
    [
        (1024, {"shared_buffers_mb": 2048}, "shared_buffers_mb=2048"),
        (1024, {"work_mem_mb": 1024}, "work_mem_mb=1024"),
        (1024, "x", "expected a dict"),
    ],
)
def test_tuning_problem(memory, settings, reason):
    assert reason in tuning_problem(settings, memory)


def test_filter_module_names():
    names = FilterModule().filters()
    assert all(name.startswith("fleet_postgresql_") for name in names)
    assert names["fleet_postgresql_tuning"] is tuning


# pg_controldata (LC_ALL=C) as PostgreSQL 15 prints it, cut to the lines that matter.
def controldata(identifier: str, state: str) -> str:
    return (
        "pg_control version number:            1300\n"
        f"Database system identifier:           {identifier}\n"
        f"Database cluster state:               {state}\n"
        "pg_control last modified:             Mon Dec  7 17:00:00 2026\n"
    )


@pytest.mark.parametrize(
    ("state", "out_of_recovery"),
    [
        ("in production", True),
        ("shut down", True),
        ("shutting down", True),
        ("in crash recovery", True),
        ("in archive recovery", False),
        ("shut down in recovery", False),
        ("starting up", False),
    ],
)
def test_a_split_brain_is_two_hosts_of_one_cluster_out_of_recovery(state, out_of_recovery):
    hosts = {"primary": controldata("7312", "in production"), "replica1": controldata("7312", state)}
    assert split_brain(hosts) == ([["primary", "replica1"]] if out_of_recovery else [])


def test_a_stopped_primary_still_counts_and_hosts_are_named_in_order():
    hosts = {
        "replica2": controldata("7312", "in production"),
        "primary": controldata("7312", "shut down"),
        "replica1": controldata("7312", "in archive recovery"),
    }
    assert split_brain(hosts) == [["primary", "replica2"]]


def test_another_clusters_primary_and_hosts_with_no_cluster_are_not_a_split_brain():
    hosts = {
        "primary": controldata("7312", "in production"),
        # Debian's freshly made cluster on a new replica, before its clone.
        "replica1": controldata("9999", "in production"),
        # No package yet, no data directory, an unreadable control file: nothing printed.
        "replica2": "",
        "replica3": "pg_controldata: error: could not open file: Permission denied",
    }
    assert split_brain(hosts) == []
    assert control_state(hosts["replica2"]) == {} == control_state(None)
    assert control_state(hosts["primary"]) == {"system_identifier": "7312", "state": "in production"}


def test_split_brain_wants_a_dict():
    with pytest.raises(AnsibleFilterError, match="expected a dict"):
        split_brain(["primary"])
    assert FilterModule().filters()["fleet_postgresql_split_brain"] is split_brain
