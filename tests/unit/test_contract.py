"""The contract as data (group_vars/all/contract.yml) equals ARCHITECTURE.md, and what each host admits."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from filter_plugins import fleet_cells
from filter_plugins.fleet_contract import (
    FilterModule,
    cell_shape,
    cell_tiers,
    check,
    default_ports,
    firewall_problems,
    flow_peers,
    inbound,
    load,
    role_groups,
)
from tests.conftest import TWO_CELL_GROUPS

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT.parent / "shared" / "ARCHITECTURE.md"
# The upstream contract sits beside the clone (as in CI); the repository's own
# rendering of the data, docs/contract.md, is tested without it (test_contract_doc.py).
needs_architecture = pytest.mark.skipif(not ARCHITECTURE.exists(), reason=f"{ARCHITECTURE} is not beside this clone")
CONTRACT = load()
PORTS = default_ports()


def architecture_flows(text: str) -> set[tuple[str, str, str, str]]:
    """(from, to, scope, what) of every row of ARCHITECTURE.md's flow table, in the contract's names."""
    section = text.split("## Flows", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header, rule, *body = rows
    assert [c.strip() for c in header.strip("|").split("|")] == ["from", "to", "what"]
    assert set(rule) <= set("|- ")
    names = CONTRACT["names"]

    def party(term: str) -> tuple[str, str]:
        term = term.strip()
        if term in names:
            return names[term], "any"
        scope = "any"
        for prefix, meant in (("every ", "any"), ("its cell's ", "cell")):
            if term.startswith(prefix):
                term, scope = term[len(prefix) :], meant
        singular = term[:-1] if term.endswith("s") else term
        for candidate in (term, singular):
            if candidate in names:
                return names[candidate], scope
        raise AssertionError(f"ARCHITECTURE.md names {term!r}, which contract.yml's `names` does not map")

    flows = set()
    for row in body:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        source, _ = party(cells[0])
        target, scope = party(cells[1])
        flows.add((source, target, scope, cells[2]))
    return flows


@needs_architecture
def test_the_flows_are_architecture_md_flow_table():
    table = architecture_flows(ARCHITECTURE.read_text())
    data = {(f["from"], f["to"], f.get("scope", "any"), f["what"]) for f in CONTRACT["flows"]}
    assert data == table, f"only in contract.yml: {data - table}; only in ARCHITECTURE.md: {table - data}"
    assert len(table) == 12


@needs_architecture
def test_the_parser_notices_a_changed_table():
    text = ARCHITECTURE.read_text().replace("| app server | its cell's replica |", "| app server | every replica |")
    flows = architecture_flows(text)
    assert ("app", "db_replicas", "any", "PostgreSQL (reads)") in flows
    assert ("app", "db_replicas", "cell", "PostgreSQL (reads)") not in flows
    with pytest.raises(AssertionError, match="redis"):
        architecture_flows(ARCHITECTURE.read_text().replace("| primary | PostgreSQL (writes)", "| redis | x"))


@needs_architecture
def test_the_cells_table_is_the_shape_of_a_cell():
    # | a | web1, web2 | lb1 | app1, app2 | replica1 |
    text = ARCHITECTURE.read_text()
    row = re.search(r"^\| a \| (.+) \|$", text, re.M).group(1)
    web, lb, app, replica = (len(c.split(",")) for c in row.split("|"))
    assert cell_shape(CONTRACT) == {"web": web, "lb": lb, "app": app, "replica": replica}


@needs_architecture
def test_the_groups_of_architecture_md_are_tiers_or_unions():
    groups = set(re.findall(r"`([a-z_]+)`", ARCHITECTURE.read_text().split("## Inventory groups", 1)[1][:600]))
    known = set(CONTRACT["tiers"]) | set(CONTRACT["unions"]) | {"cell_a", "cell_b", "drift_control"}
    assert groups <= known, groups - known


def test_the_cell_wiring_reads_the_contract():
    assert role_groups(CONTRACT) == fleet_cells.ROLE_GROUPS
    assert cell_tiers(CONTRACT) == fleet_cells.CELL_TIERS


def test_every_named_port_is_a_fleet_port():
    check(CONTRACT, PORTS)
    named = {p for t in CONTRACT["tiers"].values() for p in t["ports"] + t["metrics"]}
    named |= {p for f in CONTRACT["flows"] for p in f["ports"] if p != "metrics"}
    assert named <= set(PORTS)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["flows"].append({"from": "redis", "to": "app", "ports": ["app"], "what": "x"}),
            "'redis' is not a tier",
        ),
        (lambda c: c["flows"].append({"from": "app", "to": "lb", "ports": ["gopher"], "what": "x"}), "port gopher"),
        (
            lambda c: c["flows"].append(
                {"from": "app", "to": "db_primary", "scope": "cell", "ports": ["postgres"], "what": "x"}
            ),
            "db_primary has no cell",
        ),
        (
            lambda c: c["flows"].append({"from": "app", "to": "lb", "scope": "near", "ports": ["app"], "what": "x"}),
            "scope 'near'",
        ),
        (lambda c: c["flows"].append({"from": "app", "to": "lb", "ports": [], "what": "x"}), "no ports"),
        (lambda c: c["tiers"]["web"].update(colour="blue"), "unknown key"),
        (lambda c: c["tiers"]["web"].pop("role"), "no role"),
        (lambda c: c["unions"].update(cache=["redis"]), "redis is not a tier"),
    ],
)
def test_bad_contracts_are_refused_naming_the_problem(mutate, message):
    bad = copy.deepcopy(CONTRACT)
    mutate(bad)
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        check(bad, PORTS)


def test_a_port_that_is_not_a_number_is_refused():
    with pytest.raises(AnsibleFilterError, match="fleet_port_app"):
        check(CONTRACT, dict(PORTS, app="80a"))
    assert check(CONTRACT, dict(PORTS, app="8081"))  # -e fleet_port_app=8081 arrives as a string


# ---- what each host admits ------------------------------------------------------
def two_cells() -> tuple[dict, dict]:
    groups = copy.deepcopy(TWO_CELL_GROUPS)
    names = [h for g in ("web", "lb", "app", "db", "elb") for h in groups[g]]
    hostvars = {h: {"ansible_host": f"10.0.0.{i + 10}"} for i, h in enumerate(names)}
    return groups, hostvars


NETWORKS = {"operator": ["192.0.2.0/24"], "monitoring": []}


def admitted(host: str, groups: dict, hostvars: dict, networks: dict = NETWORKS) -> dict[int, set[str]]:
    by_port: dict[int, set[str]] = {}
    addr = {v["ansible_host"] + "/32": h for h, v in hostvars.items()}
    for rule in inbound(host, groups, hostvars, CONTRACT, PORTS, networks):
        by_port.setdefault(rule["port"], set()).update(
            {"*"} if rule["any"] else {addr.get(s, s) for s in rule["sources"]}
        )
    return by_port


def test_each_tier_admits_exactly_its_flows():
    groups, hostvars = two_cells()
    ssh = {"192.0.2.0/24"}
    assert admitted("web1", groups, hostvars) == {22: ssh, 80: {"elb"}}
    assert admitted("lb1", groups, hostvars) == {22: ssh, 8080: {"web1", "web2"}}
    assert admitted("app3", groups, hostvars) == {22: ssh, 8000: {"lb2"}}
    assert admitted("replica1", groups, hostvars) == {22: ssh, 5432: {"app1", "app2"}}
    assert admitted("primary", groups, hostvars) == {
        22: ssh,
        5432: {"app1", "app2", "app3", "app4", "replica1", "replica2"},
    }
    assert admitted("elb", groups, hostvars) == {22: ssh, 80: {"*"}, 443: {"*"}}


def test_metrics_ports_open_only_to_monitoring():
    groups, hostvars = two_cells()
    groups["monitoring"] = ["mon1"]
    hostvars["mon1"] = {"ansible_host": "10.0.0.99"}
    got = admitted("lb1", groups, hostvars, dict(NETWORKS, monitoring=["198.51.100.0/24"]))
    assert got[8404] == {"mon1", "198.51.100.0/24"}
    assert admitted("mon1", groups, hostvars) == {22: {"192.0.2.0/24"}, 9090: {"192.0.2.0/24"}, 9093: {"192.0.2.0/24"}}
    assert 8404 not in admitted("lb1", *two_cells())


def test_a_third_cell_needs_no_change():
    groups, hostvars = two_cells()
    groups["cell_c"] = ["web5", "lb3", "app5", "replica3"]
    for tier, h in (("web", "web5"), ("lb", "lb3"), ("app", "app5"), ("db_replicas", "replica3"), ("db", "replica3")):
        groups[tier].append(h)
        hostvars[h] = {"ansible_host": f"10.0.1.{len(hostvars)}"}
    assert admitted("lb3", groups, hostvars)[8080] == {"web5"}
    assert admitted("replica3", groups, hostvars)[5432] == {"app5"}
    assert {"app5", "replica3"} <= admitted("primary", groups, hostvars)[5432]
    assert "app5" not in admitted("replica1", groups, hostvars)[5432]


def test_drift_control_hosts_are_operators():
    groups, hostvars = two_cells()
    groups["drift_control"] = ["control"]
    hostvars["control"] = {"ansible_host": "10.0.0.200"}
    assert admitted("app1", groups, hostvars)[22] == {"192.0.2.0/24", "control"}


def test_pg_hba_peers_follow_the_flows():
    groups, _ = two_cells()
    assert flow_peers("replica2", groups, CONTRACT, "app") == ["app3", "app4"]
    assert flow_peers("primary", groups, CONTRACT, "app") == ["app1", "app2", "app3", "app4"]
    assert flow_peers("primary", groups, CONTRACT, "db_replicas") == ["replica1", "replica2"]
    assert flow_peers("replica1", groups, CONTRACT, "db_replicas") == []


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        ({"operator": []}, "SSH would be closed to everyone"),
        ({}, "SSH would be closed to everyone"),
        ({"operator": ["10.0.0.1/8"]}, "not a network CIDR"),
        ({"operator": ["everywhere"]}, "not a network CIDR"),
    ],
)
def test_bad_networks_are_refused(networks, message):
    groups, hostvars = two_cells()
    with pytest.raises(AnsibleFilterError, match=message):
        inbound("web1", groups, hostvars, CONTRACT, PORTS, networks)


def test_a_source_without_an_address_is_refused():
    groups, hostvars = two_cells()
    hostvars["lb1"] = {"ansible_host": "lb1.internal"}
    with pytest.raises(AnsibleFilterError, match=r"lb1: ansible_host 'lb1\.internal' is not an IP address"):
        inbound("app1", groups, hostvars, CONTRACT, PORTS, NETWORKS)


def test_the_group_vars_file_is_what_ansible_loads():
    data = yaml.safe_load((ROOT / "group_vars" / "all" / "contract.yml").read_text())
    assert data["fleet_contract"] == CONTRACT
    assert {"fleet_contract_check", "fleet_inbound", "fleet_flow_peers", "fleet_firewall_problems"} <= set(
        FilterModule().filters()
    )


def test_ssh_from_everyone_is_refused_unless_allowed():
    """An operator network of 0.0.0.0/0 passes only where firewall_ssh_open_allowed (the
    lab); group_vars/all/firewall.yml sets it false when fleet_environment is production."""
    rules = [{"port_name": "ssh", "port": 22, "sources": ["0.0.0.0/0"]}]
    assert firewall_problems(rules, 22, True) == []
    (problem,) = firewall_problems(rules, 22, False)
    assert "SSH (port 22) is admitted from 0.0.0.0/0, which is everyone: refused here" in problem
    assert firewall_problems([{"port_name": "ssh", "port": 22, "sources": ["192.0.2.0/24"]}], 22, False) == []
