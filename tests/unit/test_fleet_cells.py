"""The cell-wiring filters: who talks to whom, from the inventory groups alone."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_cells import (
    FilterModule,
    app_lb,
    app_replica,
    cell_map,
    cell_of,
    db_primary,
    lb_backends,
    rollout,
    server_list,
    web_upstream,
)
from tests.conftest import TWO_CELL_GROUPS

ROOT = Path(__file__).resolve().parents[2]

# The groups dict Ansible exposes for the two cells of ARCHITECTURE.md, including
# the implicit groups and one unrelated group, which the filters must ignore.
TWO_CELLS: dict[str, list[str]] = {
    "all": [h for g in ("elb", "web", "lb", "app", "db") for h in TWO_CELL_GROUPS[g]],
    "ungrouped": [],
    **copy.deepcopy(TWO_CELL_GROUPS),
}

CELL_C = {
    "web": ["web5", "web6"],
    "lb": ["lb3"],
    "app": ["app5", "app6"],
    "db": ["replica3"],
    "db_replicas": ["replica3"],
    "cell_c": ["web5", "web6", "lb3", "app5", "app6", "replica3"],
}


def changed(base: dict[str, list[str]], add=None, remove=None, **replace: list[str]) -> dict[str, list[str]]:
    """A copy of ``base`` with hosts added to / removed from groups, or groups replaced (None drops one)."""
    groups = copy.deepcopy(base)
    for name, hosts in (add or {}).items():
        groups.setdefault(name, []).extend(hosts)
        groups["all"].extend(h for h in hosts if h not in groups["all"])
    for name, hosts in (remove or {}).items():
        groups[name] = [h for h in groups[name] if h not in hosts]
    for name, hosts in replace.items():
        if hosts is None:
            groups.pop(name, None)
        else:
            groups[name] = hosts
    return groups


THREE_CELLS = changed(TWO_CELLS, add=CELL_C)

TWO_CELL_MAP = {
    "cell_a": {"web": ["web1", "web2"], "lb": ["lb1"], "app": ["app1", "app2"], "replica": ["replica1"]},
    "cell_b": {"web": ["web3", "web4"], "lb": ["lb2"], "app": ["app3", "app4"], "replica": ["replica2"]},
}
THREE_CELL_MAP = {
    **TWO_CELL_MAP,
    "cell_c": {"web": ["web5", "web6"], "lb": ["lb3"], "app": ["app5", "app6"], "replica": ["replica3"]},
}


# --- good topologies -----------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "expected"),
    [(TWO_CELLS, TWO_CELL_MAP), (THREE_CELLS, THREE_CELL_MAP)],
    ids=["two-cells", "three-cells"],
)
def test_cell_map(groups, expected):
    assert cell_map(groups) == expected
    assert list(cell_map(groups)) == sorted(expected)


@pytest.mark.parametrize(
    ("groups", "host", "lb"),
    [
        (TWO_CELLS, "web1", "lb1"),
        (TWO_CELLS, "web2", "lb1"),
        (TWO_CELLS, "web3", "lb2"),
        (TWO_CELLS, "web4", "lb2"),
        (THREE_CELLS, "web1", "lb1"),
        (THREE_CELLS, "web4", "lb2"),
        (THREE_CELLS, "web5", "lb3"),
        (THREE_CELLS, "web6", "lb3"),
    ],
)
def test_web_server_proxies_to_its_cells_lb(groups, host, lb):
    assert web_upstream(host, groups) == lb


@pytest.mark.parametrize(
    ("groups", "host", "apps"),
    [
        (TWO_CELLS, "lb1", ["app1", "app2"]),
        (TWO_CELLS, "lb2", ["app3", "app4"]),
        (THREE_CELLS, "lb1", ["app1", "app2"]),
        (THREE_CELLS, "lb2", ["app3", "app4"]),
        (THREE_CELLS, "lb3", ["app5", "app6"]),
    ],
)
def test_lb_balances_exactly_its_cells_app_servers(groups, host, apps):
    assert lb_backends(host, groups) == apps


@pytest.mark.parametrize(
    ("groups", "host", "replica"),
    [
        (TWO_CELLS, "app1", "replica1"),
        (TWO_CELLS, "app2", "replica1"),
        (TWO_CELLS, "app3", "replica2"),
        (TWO_CELLS, "app4", "replica2"),
        (THREE_CELLS, "app2", "replica1"),
        (THREE_CELLS, "app3", "replica2"),
        (THREE_CELLS, "app5", "replica3"),
        (THREE_CELLS, "app6", "replica3"),
    ],
)
def test_app_server_reads_from_its_cells_replica(groups, host, replica):
    assert app_replica(host, groups) == replica


@pytest.mark.parametrize("groups", [TWO_CELLS, THREE_CELLS], ids=["two-cells", "three-cells"])
def test_every_app_server_writes_to_the_one_primary(groups):
    assert db_primary(groups) == "primary"


@pytest.mark.parametrize(
    ("groups", "host", "cell"),
    [
        (TWO_CELLS, "web1", "cell_a"),
        (TWO_CELLS, "lb2", "cell_b"),
        (TWO_CELLS, "app3", "cell_b"),
        (TWO_CELLS, "replica1", "cell_a"),
        (THREE_CELLS, "web6", "cell_c"),
        (THREE_CELLS, "replica3", "cell_c"),
    ],
)
def test_cell_of(groups, host, cell):
    assert cell_of(host, groups) == cell


def test_hosts_and_cells_sort_naturally_whatever_the_inventory_order():
    groups = {
        "web": ["web10", "web9"],
        "lb": ["lb10", "lb2"],
        "app": ["app10", "app2", "app9", "app11"],
        "db_primary": ["db1"],
        "db_replicas": ["replica10", "replica2"],
        "cell_b": ["web10", "lb10", "app11", "replica10"],
        "cell_a": ["app10", "app9", "web9", "app2", "lb2", "replica2"],
    }
    assert cell_map(groups) == {
        "cell_a": {"web": ["web9"], "lb": ["lb2"], "app": ["app2", "app9", "app10"], "replica": ["replica2"]},
        "cell_b": {"web": ["web10"], "lb": ["lb10"], "app": ["app11"], "replica": ["replica10"]},
    }
    assert list(cell_map(groups)) == ["cell_a", "cell_b"]
    assert lb_backends("lb2", groups) == ["app2", "app9", "app10"]


def test_a_cell_without_web_servers_is_allowed():
    """A cell being built, or drained of web servers, is complete without them."""
    groups = changed(TWO_CELLS, remove={"web": ["web3", "web4"], "cell_b": ["web3", "web4"]})
    assert cell_map(groups)["cell_b"] == {"web": [], "lb": ["lb2"], "app": ["app3", "app4"], "replica": ["replica2"]}


def test_completeness_is_checked_only_where_it_matters():
    """A partial inventory (one role's molecule scenario) answers what it can."""
    groups = {"lb": ["lb1"], "app": ["app1", "app2"], "cell_a": ["lb1", "app1", "app2"]}
    assert lb_backends("lb1", groups) == ["app1", "app2"]
    # cell_b without a replica does not stop cell a or cell b's web tier.
    groups = changed(TWO_CELLS, remove={"db": ["replica2"], "db_replicas": ["replica2"], "cell_b": ["replica2"]})
    assert app_replica("app1", groups) == "replica1"
    assert web_upstream("web3", groups) == "lb2"


def test_results_are_copies():
    lb_backends("lb1", TWO_CELLS).append("intruder")
    cell_map(TWO_CELLS)["cell_a"]["app"].clear()
    assert lb_backends("lb1", TWO_CELLS) == ["app1", "app2"]


def test_filters_are_registered():
    assert FilterModule().filters() == {
        "fleet_cell_of": cell_of,
        "fleet_cell_map": cell_map,
        "fleet_web_upstream": web_upstream,
        "fleet_lb_backends": lb_backends,
        "fleet_app_replica": app_replica,
        "fleet_db_primary": db_primary,
        "fleet_server_list": server_list,
        "fleet_app_lb": app_lb,
        "fleet_rollout": rollout,
    }


# --- rolling changes of the app tier --------------------------------------------


def test_app_server_is_balanced_by_its_cells_lb():
    assert [app_lb(h, TWO_CELLS) for h in ("app1", "app2", "app3", "app4")] == ["lb1", "lb1", "lb2", "lb2"]
    # A cell whose LB is not built yet: nothing to drain.
    assert app_lb("app1", changed(TWO_CELLS, remove={"lb": ["lb1"], "cell_a": ["lb1"]})) is None


@pytest.mark.parametrize(
    ("groups", "hosts", "per_cell", "order", "batches"),
    [
        (TWO_CELLS, ["app4", "app3", "app2", "app1"], 1, ["app1", "app3", "app2", "app4"], [2, 2]),
        (TWO_CELLS, ["app1", "app2", "app3", "app4"], 2, ["app1", "app2", "app3", "app4"], [4]),
        (TWO_CELLS, ["app2", "app4"], 1, ["app2", "app4"], [2]),
        (TWO_CELLS, ["app1", "app2"], "1", ["app1", "app2"], [1, 1]),
        (
            THREE_CELLS,
            ["app1", "app2", "app3", "app4", "app5", "app6"],
            1,
            ["app1", "app3", "app5", "app2", "app4", "app6"],
            [3, 3],
        ),
        (
            changed(TWO_CELLS, add={"app": ["app5"], "cell_a": ["app5"]}),
            ["app1", "app2", "app3", "app4", "app5"],
            2,
            ["app1", "app2", "app3", "app4", "app5"],
            [4, 1],
        ),
        (TWO_CELLS, [], 1, [], []),
    ],
    ids=["one-per-cell", "whole-cells", "limited", "string-batch", "three-cells", "uneven-cells", "no-hosts"],
)
def test_rollout_takes_the_same_batch_from_every_cell(groups, hosts, per_cell, order, batches):
    plan = rollout(hosts, groups, per_cell)
    assert plan["order"] == order
    assert plan["batches"] == batches
    assert sum(plan["batches"]) == len(hosts)


def test_rollout_may_drain_a_server_while_another_in_its_cell_is_up():
    up = {"app1": True, "app2": True, "app3": False, "app4": True}
    # Only app4 of cell_b in the run, app3 out: draining app4 would leave cell_b nothing.
    with pytest.raises(AnsibleFilterError) as err:
        rollout(["app1", "app2", "app4"], TWO_CELLS, 1, up)
    assert str(err.value) == (
        "fleet cell wiring: draining app4 would leave the LB of cell_b with no UP server (UP now: app4); "
        "bring another server of cell_b UP first or deploy with a smaller app_rollout_per_cell"
    )
    # Both of cell_b in one batch: nothing left either.
    with pytest.raises(AnsibleFilterError, match="draining app3, app4 would leave the LB of cell_b"):
        rollout(["app3", "app4"], TWO_CELLS, 2, up)
    # The same fleet with every server UP rolls; an LB that knows no server (not built yet) too.
    assert rollout(["app3", "app4"], TWO_CELLS, 1, {h: True for h in up})["order"] == ["app3", "app4"]
    assert rollout(["app3", "app4"], TWO_CELLS, 1, {})["batches"] == [1, 1]


def test_rollout_counts_a_server_of_an_earlier_batch_as_up_again():
    # A failed run left app1 and app3 drained: the next run changes them first, and
    # app2 and app4 follow once they are back (or the rollout stops at them).
    up = {"app1": False, "app2": True, "app3": False, "app4": True}
    plan = rollout(["app1", "app2", "app3", "app4"], TWO_CELLS, 1, up)
    assert plan["order"] == ["app1", "app3", "app2", "app4"]
    assert plan["batches"] == [2, 2]


@pytest.mark.parametrize(
    ("per_cell", "message"),
    [
        (0, "app_rollout_per_cell: a batch of 0 per cell does not fit cell_a, which has 2 app server(s): use 1-2"),
        (3, "app_rollout_per_cell: a batch of 3 per cell does not fit cell_a, which has 2 app server(s): use 1-2"),
        ("two", "app_rollout_per_cell must be a whole number, got 'two'"),
        (True, "app_rollout_per_cell must be a whole number, got True"),
    ],
)
def test_rollout_refuses_a_batch_that_does_not_fit(per_cell, message):
    with pytest.raises(AnsibleFilterError) as err:
        rollout(["app1", "app3"], TWO_CELLS, per_cell)
    assert str(err.value).startswith("fleet cell wiring: " + message)


def test_rollout_refuses_hosts_that_are_not_app_servers():
    with pytest.raises(AnsibleFilterError, match="web1 is not an app server"):
        rollout(["app1", "web1"], TWO_CELLS, 1)


# --- bad topologies ------------------------------------------------------------

# Membership problems: wrong whatever is asked, so every filter refuses them.
MEMBERSHIP_PROBLEMS = [
    pytest.param(
        changed(TWO_CELLS, add={"web": ["web5"]}),
        ["web5 is in group web but in no cell group (cells: cell_a, cell_b)"],
        id="web-server-with-no-cell",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"app": ["app5"]}),
        ["app5 is in group app but in no cell group"],
        id="app-server-with-no-cell",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"cell_b": ["app1"]}),
        ["app1 is in 2 cells (cell_a, cell_b)"],
        id="host-in-two-cells",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"lb": ["web1"]}),
        ["web1 is in more than one role group (web, lb)"],
        id="host-both-web-and-lb",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"db": ["app2"]}),
        ["app2 is in more than one role group (app, db)"],
        id="host-both-app-and-db",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"db_replicas": ["primary"]}),
        ["primary is in more than one role group (db_primary, db_replicas)"],
        id="host-both-primary-and-replica",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"web": ["web2"]}),
        ["web2 is listed more than once in group web"],
        id="host-listed-twice-in-tier",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"cell_b": ["lb2"]}),
        ["lb2 is listed more than once in group cell_b"],
        id="host-listed-twice-in-cell",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"lb": ["lb3"], "cell_a": ["lb3"]}),
        ["cell_a has 2 LBs (lb1, lb3)"],
        id="two-lbs-in-one-cell",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"db": ["replica3"], "db_replicas": ["replica3"], "cell_b": ["replica3"]}),
        ["cell_b has 2 replicas (replica2, replica3)"],
        id="two-replicas-in-one-cell",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"cell_a": ["primary"]}),
        ["primary is the primary and must not be in cell_a"],
        id="primary-in-a-cell",
    ),
    pytest.param(
        changed(TWO_CELLS, remove={"lb": ["lb2"]}),
        ["lb2 is in cell_b but in none of the groups web, lb, app, db_replicas"],
        id="cell-member-with-no-role",
    ),
    pytest.param(
        changed(TWO_CELLS, web="web1"),
        ["group web must be a list of host names, got str"],
        id="group-not-a-list",
    ),
    pytest.param(
        changed(TWO_CELLS, add={"web": ["web5"], "cell_a": ["app3"]}),
        ["app3 is in 2 cells (cell_a, cell_b)", "web5 is in group web but in no cell group"],
        id="every-problem-reported-at-once",
    ),
]

CALLS = [
    pytest.param(cell_map, id="cell_map"),
    pytest.param(lambda groups: cell_of("web1", groups), id="cell_of"),
    pytest.param(lambda groups: web_upstream("web1", groups), id="web_upstream"),
    pytest.param(lambda groups: lb_backends("lb1", groups), id="lb_backends"),
    pytest.param(lambda groups: app_replica("app1", groups), id="app_replica"),
    pytest.param(db_primary, id="db_primary"),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("groups", "messages"), MEMBERSHIP_PROBLEMS)
def test_membership_problems_fail_every_filter(groups, messages, call):
    with pytest.raises(AnsibleFilterError) as err:
        call(groups)
    for message in messages:
        assert message in str(err.value)


NO_LB_B = changed(TWO_CELLS, remove={"lb": ["lb2"], "cell_b": ["lb2"]})
NO_APP_B = changed(TWO_CELLS, remove={"app": ["app3", "app4"], "cell_b": ["app3", "app4"]})
NO_REPLICA_B = changed(TWO_CELLS, remove={"db": ["replica2"], "db_replicas": ["replica2"], "cell_b": ["replica2"]})


# Completeness problems: reported by the filters that need the missing part.
@pytest.mark.parametrize(
    ("call", "groups", "message"),
    [
        pytest.param(cell_map, NO_LB_B, "cell_b has no LB: no host of group lb is in cell_b", id="cell-no-lb-map"),
        pytest.param(
            lambda g: web_upstream("web3", g),
            NO_LB_B,
            "web3 in cell_b has no LB to proxy to",
            id="cell-no-lb-web-upstream",
        ),
        pytest.param(
            cell_map,
            NO_APP_B,
            "cell_b has no app servers: no host of group app is in cell_b (web3, web4 would have nowhere to go)",
            id="cell-web-but-no-app-map",
        ),
        pytest.param(
            lambda g: lb_backends("lb2", g),
            NO_APP_B,
            "lb2 in cell_b has no app servers to balance",
            id="cell-web-but-no-app-lb-backends",
        ),
        pytest.param(
            cell_map,
            NO_REPLICA_B,
            "cell_b has no replica for app3, app4 to read from",
            id="app-cell-no-replica-map",
        ),
        pytest.param(
            lambda g: app_replica("app4", g),
            NO_REPLICA_B,
            "app4 in cell_b has no replica to read from",
            id="app-cell-no-replica-app-replica",
        ),
        pytest.param(
            cell_map,
            changed(TWO_CELLS, cell_c=[]),
            "cell_c has no LB",
            id="empty-cell-group",
        ),
        pytest.param(
            db_primary,
            changed(TWO_CELLS, db_primary=[]),
            "group db_primary has 0 hosts; exactly one is required",
            id="no-primary",
        ),
        pytest.param(
            db_primary,
            changed(TWO_CELLS, db_primary=None),
            "group db_primary has 0 hosts",
            id="no-primary-group",
        ),
        pytest.param(
            db_primary,
            changed(TWO_CELLS, add={"db": ["primary2"], "db_primary": ["primary2"]}),
            "group db_primary has 2 hosts (primary, primary2); exactly one is required",
            id="two-primaries",
        ),
    ],
)
def test_incomplete_cells_fail_where_it_matters(call, groups, message):
    with pytest.raises(AnsibleFilterError) as err:
        call(groups)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda g: web_upstream("lb1", g), "lb1 is not in group web (it is in lb)", id="lb-as-web"),
        pytest.param(lambda g: lb_backends("app1", g), "app1 is not in group lb (it is in app)", id="app-as-lb"),
        pytest.param(
            lambda g: app_replica("ghost", g), "ghost is not in group app (it is in none of the role", id="unknown-app"
        ),
        pytest.param(lambda g: cell_of("primary", g), "primary is in no cell (it is in db_primary", id="primary-cell"),
        pytest.param(
            lambda g: cell_of("elb", g),
            "elb is in no cell (it is in elb, which belongs to no cell)",
            id="elb-host-cell",
        ),
        pytest.param(lambda g: web_upstream(None, g), "expected a host name, got NoneType", id="host-not-a-name"),
        pytest.param(lambda g: cell_map(["web1"]), "expected the inventory groups (a mapping)", id="groups-not-a-map"),
    ],
)
def test_wrong_questions_name_the_host(call, message):
    with pytest.raises(AnsibleFilterError) as err:
        call(TWO_CELLS)
    assert message in str(err.value)


# --- through Ansible -----------------------------------------------------------


def _inventory(groups: dict[str, list[str]]) -> dict:
    """A YAML inventory holding ``groups``: db the parent of db_primary and db_replicas, every host local."""
    children: dict[str, dict] = {
        name: {"hosts": dict.fromkeys(hosts)}
        for name, hosts in groups.items()
        if name not in {"all", "ungrouped", "db", "db_primary", "db_replicas"}
    }
    children["db"] = {
        "children": {name: {"hosts": dict.fromkeys(groups.get(name, []))} for name in ("db_primary", "db_replicas")}
    }
    return {"all": {"vars": {"ansible_connection": "local"}, "children": children}}


def _ansible_debug(tmp_path: Path, groups: dict[str, list[str]], host: str, expression: str):
    """Run ``ansible <host> -m debug -a msg={{ expression }}`` with only fleet's filter plugins configured."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump(_inventory(groups), sort_keys=False))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOME=str(tmp_path / ".ansible"),
        ANSIBLE_FILTER_PLUGINS=str(ROOT / "filter_plugins"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_NOCOLOR="1",
    )
    ansible = Path(sys.executable).with_name("ansible")
    proc = subprocess.run(
        [str(ansible), host, "-i", str(inventory), "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {expression} }}}}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return proc


def _result(proc, host: str) -> dict:
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]


@pytest.mark.parametrize(
    ("groups", "host", "expression", "expected"),
    [
        pytest.param(TWO_CELLS, "web1", "groups | fleet_cell_map", TWO_CELL_MAP, id="cell-map"),
        pytest.param(THREE_CELLS, "web5", "inventory_hostname | fleet_web_upstream(groups)", "lb3", id="web-upstream"),
        pytest.param(
            THREE_CELLS, "lb3", "inventory_hostname | fleet_lb_backends(groups)", ["app5", "app6"], id="lb-backends"
        ),
        pytest.param(TWO_CELLS, "app3", "inventory_hostname | fleet_app_replica(groups)", "replica2", id="app-replica"),
        pytest.param(TWO_CELLS, "app3", "groups | fleet_db_primary", "primary", id="db-primary"),
    ],
)
def test_filters_load_and_answer_in_ansible(tmp_path, groups, host, expression, expected):
    proc = _ansible_debug(tmp_path, groups, host, expression)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _result(proc, host)["msg"] == expected


def test_bad_topology_fails_in_ansible_naming_the_host(tmp_path):
    groups = changed(TWO_CELLS, add={"web": ["web5"]})
    proc = _ansible_debug(tmp_path, groups, "web1", "groups | fleet_cell_map")
    assert proc.returncode != 0
    result = _result(proc, "web1")
    assert result["failed"] is True
    assert "web5 is in group web but in no cell group" in result["msg"]


def test_server_list_takes_addresses_from_the_inventory():
    hostvars = {"app1": {"ansible_host": "10.0.1.11"}, "app2": {}}
    assert server_list(["app1", "app2"], hostvars, 8000) == [
        {"name": "app1", "address": "10.0.1.11", "port": 8000},
        {"name": "app2", "address": "app2", "port": 8000},
    ]


def test_server_list_refuses_a_host_not_in_the_inventory():
    with pytest.raises(AnsibleFilterError, match="app9 is not in the inventory"):
        server_list(["app9"], {}, 8000)
