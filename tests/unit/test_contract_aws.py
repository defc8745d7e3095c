"""The contract's AWS readers: fleet_aws_tiers, fleet_aws_security_groups and library/fleet_aws_plan.py."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_contract import (
    FilterModule,
    aws_operator_problems,
    aws_security_groups,
    aws_security_groups_out_of_shape,
    aws_tiers,
    default_ports,
    load,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load()
PORTS = default_ports()
AWS = yaml.safe_load((ROOT / "group_vars" / "all" / "aws.yml").read_text())
OPERATORS = ["203.0.113.0/24"]
PREFIX = "fleet-x"
P = {name: int(port) for name, port in PORTS.items()}

_spec = importlib.util.spec_from_file_location("fleet_aws_plan", ROOT / "library" / "fleet_aws_plan.py")
fleet_aws_plan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_aws_plan)


def groups(cells=("a", "b"), https=False, contract=CONTRACT, ports=PORTS, operators=OPERATORS) -> dict[str, dict]:
    """The security groups by key (a-web, primary, ...)."""
    found = aws_security_groups(contract, ports, list(cells), PREFIX, operators, https=https)
    return {g["key"]: g for g in found}


def peers(rules: list[dict]) -> set[tuple[int, str]]:
    """(port, peer) of every rule; a peer group by its key, a CIDR as is."""
    out = set()
    for rule in rules:
        assert rule["proto"] == "tcp"
        (port,) = rule["ports"]
        peer = rule["group_name"].removeprefix(PREFIX + "-") if "group_name" in rule else rule["cidr_ip"]
        out.add((port, peer))
    return out


def ingress(found: dict, key: str) -> set[tuple[int, str]]:
    return peers(found[key]["rules"])


def egress(found: dict, key: str) -> set[tuple[int, str]]:
    return peers(found[key]["rules_egress"])


ANYWHERE = "0.0.0.0/0"
MIRROR = {(P["http"], ANYWHERE), (P["https"], ANYWHERE)}


# ---- the tiers fleet_aws_plan takes ---------------------------------------------
def test_the_plan_tiers_are_the_contract_cell_tiers_with_the_inventory_tags():
    # inventories/aws/fleet.aws_ec2.yml groups on Role (web, lb, app, db) and DbRole.
    assert aws_tiers(CONTRACT) == [
        {"group": "web", "key": "web", "per_cell": 2, "role": "web", "db_role": ""},
        {"group": "lb", "key": "lb", "per_cell": 1, "role": "lb", "db_role": ""},
        {"group": "app", "key": "app", "per_cell": 2, "role": "app", "db_role": ""},
        {"group": "db_replicas", "key": "replica", "per_cell": 1, "role": "db", "db_role": "replica"},
    ]
    inventory = yaml.safe_load((ROOT / "inventories" / "aws" / "fleet.aws_ec2.yml").read_text())
    assert inventory["groups"]["db_replicas"] == "ec2_tags.DbRole | default('') == 'replica'"


# ---- the security groups ---------------------------------------------------------
def test_one_group_per_cell_tier_per_cell_and_the_primary_alb_bastion():
    found = aws_security_groups(CONTRACT, PORTS, AWS["aws_cells"], PREFIX, OPERATORS)
    assert [g["name"] for g in found] == [
        f"{PREFIX}-{k}"
        for k in (
            "a-web",
            "a-lb",
            "a-app",
            "a-replica",
            "b-web",
            "b-lb",
            "b-app",
            "b-replica",
            "primary",
            "alb",
            "bastion",
        )
    ]
    by_key = {g["key"]: g for g in found}
    assert (by_key["a-replica"]["tier"], by_key["a-replica"]["cell"]) == ("db_replicas", "a")
    assert (by_key["primary"]["tier"], by_key["primary"]["cell"]) == ("db_primary", "")


def test_each_cell_admits_exactly_its_flows():
    found = groups()
    ssh = (P["ssh"], "bastion")
    assert ingress(found, "alb") == {(P["http"], ANYWHERE)}
    assert ingress(found, "a-web") == {(P["http"], "alb"), ssh}
    assert ingress(found, "a-lb") == {(P["lb_frontend"], "a-web"), (P["lb_stats"], "bastion"), ssh}
    assert ingress(found, "a-app") == {(P["app"], "a-lb"), ssh}
    assert ingress(found, "a-replica") == {(P["postgres"], "a-app"), ssh}
    assert ingress(found, "b-replica") == {(P["postgres"], "b-app"), ssh}
    assert ingress(found, "primary") == {
        (P["postgres"], peer) for peer in ("a-app", "a-replica", "b-app", "b-replica")
    } | {ssh}
    assert ingress(found, "bastion") == {(P["ssh"], cidr) for cidr in OPERATORS}


def test_egress_is_the_flows_and_the_package_mirror():
    found = groups()
    assert egress(found, "alb") == {(P["http"], "a-web"), (P["http"], "b-web")}
    assert egress(found, "a-web") == {(P["lb_frontend"], "a-lb")} | MIRROR
    assert egress(found, "a-lb") == {(P["app"], "a-app")} | MIRROR
    assert egress(found, "a-app") == {(P["postgres"], "a-replica"), (P["postgres"], "primary")} | MIRROR
    assert egress(found, "a-replica") == {(P["postgres"], "primary")} | MIRROR
    assert egress(found, "primary") == MIRROR  # the backups' https is in it
    hosts = [k for k in found if k not in ("alb", "bastion")]
    assert egress(found, "bastion") == (
        {(P["ssh"], k) for k in hosts} | {(P["lb_stats"], "a-lb"), (P["lb_stats"], "b-lb")} | MIRROR
    )


def test_https_only_where_something_listens():
    plain, tls = groups(https=False), groups(https=True)
    assert (P["https"], ANYWHERE) not in ingress(plain, "alb")
    assert ingress(tls, "alb") == {(P["http"], ANYWHERE), (P["https"], ANYWHERE)}
    # nginx listens on http only: the ALB reaches the web servers on http with or without TLS.
    for found in (plain, tls):
        assert {port for port, _ in ingress(found, "a-web")} == {P["http"], P["ssh"]}


def test_ssh_reaches_every_host_only_from_the_bastion():
    found = groups(cells=("a", "b", "c"))
    for key in found:
        sources = {peer for port, peer in ingress(found, key) if port == P["ssh"]}
        assert sources == (set(OPERATORS) if key == "bastion" else set() if key == "alb" else {"bastion"}), key


def test_a_third_cell_adds_exactly_its_groups_and_the_primary_rules():
    two, three = groups(), groups(cells=("a", "b", "c"))
    assert set(three) - set(two) == {"c-web", "c-lb", "c-app", "c-replica"}
    assert ingress(three, "primary") - ingress(two, "primary") == {
        (P["postgres"], "c-app"),
        (P["postgres"], "c-replica"),
    }
    assert ingress(three, "c-lb") == {(P["lb_frontend"], "c-web"), (P["lb_stats"], "bastion"), (P["ssh"], "bastion")}
    assert egress(three, "alb") - egress(two, "alb") == {(P["http"], "c-web")}
    for key in two:
        if key not in ("primary", "alb", "bastion"):
            assert two[key] == three[key], key


def test_ports_follow_fleet_ports_given_as_strings():
    # -e fleet_port_lb_frontend=8081 arrives as a string.
    found = groups(ports=dict(PORTS, lb_frontend="8081"))
    assert (8081, "a-web") in ingress(found, "a-lb")
    assert (8081, "a-lb") in egress(found, "a-web")
    assert P["lb_frontend"] not in {port for port, _ in ingress(found, "a-lb")}


def test_a_new_tier_is_one_tier_entry_and_its_flows():
    contract = copy.deepcopy(CONTRACT)
    contract["tiers"]["cache"] = {"role": "redis", "cell": "cache", "per_cell": 1, "ports": ["redis"], "metrics": []}
    contract["flows"].append({"from": "app", "to": "cache", "scope": "cell", "ports": ["redis"], "what": "cache"})
    found = groups(contract=contract, ports=dict(PORTS, redis=6379))
    assert ingress(found, "a-cache") == {(6379, "a-app"), (P["ssh"], "bastion")}
    assert (6379, "a-cache") in egress(found, "a-app")
    assert (6379, "b-cache") not in egress(found, "a-app")
    assert aws_tiers(contract)[-1] == {"group": "cache", "key": "cache", "per_cell": 1, "role": "cache", "db_role": ""}


def test_rule_descriptions_use_only_what_aws_allows():
    allowed = re.compile(r"^[A-Za-z0-9 ._:/()#,@\[\]+=&;{}!$*-]{1,255}$")
    for group in groups(https=True).values():
        assert allowed.match(group["description"]), group["description"]
        for rule in group["rules"] + group["rules_egress"]:
            assert allowed.match(rule["rule_desc"]), rule


@pytest.mark.parametrize(
    ("operators", "cells", "message"),
    [
        ([], ["a"], "aws_operator_cidrs is empty"),
        ("", ["a"], "aws_operator_cidrs is empty"),
        (["not-a-cidr"], ["a"], "aws_operator_cidrs: 'not-a-cidr' is not an IPv4 network CIDR"),
        (["10.0.0.1/8"], ["a"], "has host bits set"),
        (OPERATORS, [], "at least one cell"),
        (OPERATORS, ["a", "a"], "cell a is defined twice"),
        (OPERATORS, ["A"], "'A' is not a cell name"),
    ],
)
def test_bad_input_is_refused_naming_it(operators, cells, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        aws_security_groups(CONTRACT, PORTS, cells, PREFIX, operators)


def test_a_bad_contract_is_refused():
    contract = copy.deepcopy(CONTRACT)
    contract["flows"].append({"from": "redis", "to": "app", "ports": ["app"], "what": "x"})
    with pytest.raises(AnsibleFilterError, match="'redis' is not a tier"):
        aws_security_groups(contract, PORTS, ["a"], PREFIX, OPERATORS)


def test_everyone_as_operator_is_refused_in_production_only():
    assert "refused in production" in aws_operator_problems(["0.0.0.0/0"], "production")[0]
    assert aws_operator_problems(["0.0.0.0/0"], "staging") == []
    assert aws_operator_problems(OPERATORS, "production") == []


def test_the_filters_are_registered():
    names = set(FilterModule().filters())
    assert {
        "fleet_aws_tiers",
        "fleet_aws_security_groups",
        "fleet_aws_operator_problems",
        "fleet_aws_security_groups_out_of_shape",
    } <= names


# ---- library/fleet_aws_plan.py ----------------------------------------------------
def params(**override) -> dict:
    base = {
        "region": "us-east-1",
        "vpc_cidr": AWS["aws_vpc_cidr"],
        "operator_cidrs": OPERATORS,
        "environment": "production",
        "tiers": aws_tiers(CONTRACT),
        "cells": AWS["aws_cells"],
        "cell_tiers": AWS["aws_cell_tiers"],
        "primary_instance_type": AWS["aws_primary_instance_type"],
        "bastion_instance_type": AWS["aws_bastion_instance_type"],
        "zones": ["us-east-1a", "us-east-1b", "us-east-1c"],
    }
    return {**base, **override}


def test_the_plan_names_the_hosts_from_the_contract_shape():
    _, instances, problems = fleet_aws_plan.plan(params())
    assert problems == []
    by_name = {i["name"]: i for i in instances}
    hosts = "web1 web2 web3 web4 lb1 lb2 app1 app2 app3 app4 replica1 replica2 primary bastion"
    assert sorted(by_name) == sorted(hosts.split())
    assert (by_name["replica2"]["role"], by_name["replica2"]["db_role"], by_name["replica2"]["cell"]) == (
        "db",
        "replica",
        "b",
    )
    assert (by_name["primary"]["role"], by_name["primary"]["db_role"]) == ("db", "primary")
    assert by_name["web3"]["instance_type"] == AWS["aws_cell_tiers"]["web"]["instance_type"]
    bastion = by_name["bastion"]
    assert (bastion["role"], bastion["cell"], bastion["public"]) == ("bastion", "", True)
    assert bastion["subnet_cidr"] == AWS["aws_cells"][0]["public_cidr"]
    assert bastion["instance_type"] == "t3.micro"
    assert not any(i["public"] for i in instances if i["name"] != "bastion")
    # Every instance's group is one the filter makes.
    keys = set(groups())
    assert {i["security_group"] for i in instances} <= keys
    assert by_name["app3"]["security_group"] == "b-app"


def test_counts_default_from_the_contract_and_may_be_overridden():
    cells = [AWS["aws_cells"][0], {**AWS["aws_cells"][1], "tiers": {"web": {"count": 3}}}]
    _, instances, problems = fleet_aws_plan.plan(
        params(cells=cells, cell_tiers={**AWS["aws_cell_tiers"], "app": {"count": 1, "instance_type": "t3.large"}})
    )
    assert problems == []
    names = [i["name"] for i in instances]
    assert [n for n in names if n.startswith("web")] == ["web1", "web2", "web3", "web4", "web5"]
    assert [n for n in names if n.startswith("app")] == ["app1", "app2"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"operator_cidrs": []}, "aws_operator_cidrs is empty"),
        ({"operator_cidrs": ["0.0.0.0/0"]}, "refused in production (fleet_environment=production)"),
        ({"operator_cidrs": ["203.0.113.0/33"]}, "aws_operator_cidrs: '203.0.113.0/33' is not an IPv4 network CIDR"),
        (
            {"cell_tiers": {**AWS["aws_cell_tiers"], "cache": {"instance_type": "t3.small"}}},
            "aws_cell_tiers: unknown tier 'cache'",
        ),
        (
            {"cell_tiers": {"web": {"instance_type": "t3.small"}}},
            "lb instance_type of cell a is missing (aws_cell_tiers.lb)",
        ),
        (
            {"cell_tiers": {**AWS["aws_cell_tiers"], "lb": {"count": 2, "instance_type": "t3.small"}}},
            "a cell has exactly one lb",
        ),
        ({"tiers": []}, "the contract has no cell tiers"),
        (
            {"tiers": [{"group": "web", "key": "Web", "per_cell": 2, "role": "web", "db_role": ""}]},
            "not a host name prefix",
        ),
    ],
)
def test_the_plan_refuses_bad_input(override, message):
    _, _, problems = fleet_aws_plan.plan(params(**override))
    assert any(message in p for p in problems), problems


def test_everyone_as_operator_outside_production_is_allowed():
    _, _, problems = fleet_aws_plan.plan(params(operator_cidrs=["0.0.0.0/0"], environment="staging"))
    assert problems == []


# ---- which groups provision.yml must touch ------------------------------------------
BASE_TAGS = {"Project": "fleet", "Environment": "x"}


def described(planned: list[dict]) -> list[dict]:
    """The planned groups as ec2_security_group_info returns them once applied (AWS merges a port's peers)."""
    ids = {g["name"]: f"sg-{i}" for i, g in enumerate(planned)}

    def perms(rules: list[dict]) -> list[dict]:
        out: dict[int, dict] = {}
        for rule in rules:
            (port,) = rule["ports"]
            perm = out.setdefault(
                port,
                {"ip_protocol": "tcp", "from_port": port, "to_port": port, "ip_ranges": [], "user_id_group_pairs": []},
            )
            if "group_name" in rule:
                perm["user_id_group_pairs"].append(
                    {"group_id": ids[rule["group_name"]], "description": rule["rule_desc"]}
                )
            else:
                perm["ip_ranges"].append({"cidr_ip": rule["cidr_ip"], "description": rule["rule_desc"]})
        return list(out.values())

    return [
        {
            "group_name": g["name"],
            "group_id": ids[g["name"]],
            "ip_permissions": perms(g["rules"]),
            "ip_permissions_egress": perms(g["rules_egress"]),
            "tags": {**BASE_TAGS, **g["tags"]},
        }
        for g in planned
    ]


def test_a_converged_vpc_needs_no_group_touched():
    planned = aws_security_groups(CONTRACT, PORTS, ["a", "b"], PREFIX, OPERATORS)
    assert aws_security_groups_out_of_shape(planned, described(planned), BASE_TAGS) == []


@pytest.mark.parametrize(
    ("drift", "stale"),
    [
        (lambda found: found[1]["ip_permissions"].pop(), "a-lb"),  # a rule gone
        (
            lambda found: found[0]["ip_permissions"].append(
                {"ip_protocol": "tcp", "from_port": 443, "to_port": 443, "ip_ranges": [{"cidr_ip": "0.0.0.0/0"}]}
            ),
            "a-web",
        ),  # a rule added by hand
        (lambda found: found[2]["ip_permissions"][0]["user_id_group_pairs"][0].update(description="x"), "a-app"),
        # a new group: AWS's default egress, everything anywhere
        (
            lambda found: found[3].update(
                ip_permissions_egress=[{"ip_protocol": "-1", "ip_ranges": [{"cidr_ip": "0.0.0.0/0"}]}]
            ),
            "a-replica",
        ),
        (lambda found: found[8]["tags"].update(Tier="web"), "primary"),
    ],
)
def test_a_group_that_differs_from_the_plan_is_touched(drift, stale):
    planned = aws_security_groups(CONTRACT, PORTS, ["a", "b"], PREFIX, OPERATORS)
    found = described(planned)
    drift(found)
    assert aws_security_groups_out_of_shape(planned, found, BASE_TAGS) == [f"{PREFIX}-{stale}"]


def test_a_missing_group_is_touched_with_the_groups_that_name_it():
    planned = aws_security_groups(CONTRACT, PORTS, ["a", "b"], PREFIX, OPERATORS)
    found = [g for g in described(planned) if g["group_name"] != f"{PREFIX}-a-web"]
    stale = aws_security_groups_out_of_shape(planned, found, BASE_TAGS)
    assert stale == [f"{PREFIX}-{k}" for k in ("a-web", "a-lb", "alb", "bastion")]


def test_a_new_cell_touches_its_groups_and_those_that_admit_it():
    two = aws_security_groups(CONTRACT, PORTS, ["a", "b"], PREFIX, OPERATORS)
    three = aws_security_groups(CONTRACT, PORTS, ["a", "b", "c"], PREFIX, OPERATORS)
    stale = aws_security_groups_out_of_shape(three, described(two), BASE_TAGS)
    assert stale == [f"{PREFIX}-{k}" for k in ("c-web", "c-lb", "c-app", "c-replica", "primary", "alb", "bastion")]
