"""playbooks/provision.yml, inventories/aws and playbooks/teardown.yml against a local moto.

The tests of this module build on one another, in order: bad input creates
nothing, provisioning builds the fleet (security groups equal to the contract's
flows per cell, a NAT gateway, a bastion), a second run changes nothing, the
inventory groups it like the lab and jumps through the bastion, cell c is a
variable change that adds exactly its groups, teardown refuses without
confirmation and then removes everything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from filter_plugins.fleet_contract import default_ports
from tests.aws.conftest import MOTO_AMI, OPERATOR_CIDR, aws_run, client, playbook, reset_moto
from tests.conftest import ROOT, TWO_CELL_GROUPS, plain

pytestmark = pytest.mark.aws

FLEET = yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text())
AWS = yaml.safe_load((ROOT / "group_vars" / "all" / "aws.yml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "inventories" / "aws" / "group_vars" / "all.yml").read_text())["fleet_environment"]
PREFIX = f"{FLEET['fleet_project']}-{ENVIRONMENT}"
PORT = default_ports()
CONTRACT = yaml.safe_load((ROOT / "group_vars" / "all" / "contract.yml").read_text())["fleet_contract"]
ANYWHERE = "0.0.0.0/0"

# The groups as ansible-inventory lists them: each sorted by name.
LAB_HOSTS = {g: sorted(hosts) for g, hosts in TWO_CELL_GROUPS.items() if g != "elb"}


def fleet_vpcs(url: str) -> list[dict]:
    return client(url, "ec2").describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["fleet"]}])["Vpcs"]


def live_instances(url: str) -> dict[str, dict]:
    """Running fleet instances by Name tag."""
    pages = client(url, "ec2").describe_instances(
        Filters=[
            {"Name": "tag:Project", "Values": ["fleet"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    found = {}
    for reservation in pages["Reservations"]:
        for inst in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            found[tags["Name"]] = {**inst, "TagMap": tags}
    return found


def ingress(url: str, key: str = "IpPermissions") -> dict[str, set[tuple[int, int, str]]]:
    """Every fleet security group's ingress (or egress) as (from port, to port, peer group or CIDR).

    Groups and peers by their names without the prefix: a-web, primary, alb, bastion.
    """
    groups = client(url, "ec2").describe_security_groups(Filters=[{"Name": "tag:Project", "Values": ["fleet"]}])[
        "SecurityGroups"
    ]
    names = {g["GroupId"]: g["GroupName"] for g in groups}
    rules: dict[str, set[tuple[int, int, str]]] = {}
    for group in groups:
        found = rules.setdefault(group["GroupName"].removeprefix(PREFIX + "-"), set())
        for perm in group[key]:
            assert perm["IpProtocol"] == "tcp", perm
            for pair in perm.get("UserIdGroupPairs", []):
                found.add((perm["FromPort"], perm["ToPort"], names[pair["GroupId"]].removeprefix(PREFIX + "-")))
            for cidr in perm.get("IpRanges", []):
                found.add((perm["FromPort"], perm["ToPort"], cidr["CidrIp"]))
            assert not perm.get("Ipv6Ranges"), perm
    return rules


def egress(url: str) -> dict[str, set[tuple[int, int, str]]]:
    return ingress(url, "IpPermissionsEgress")


def contract_rules(cells: list[str], https: bool) -> tuple[dict[str, set], dict[str, set]]:
    """(ingress, egress) of every security group, worked out here from the contract's flows.

    Independently of filter_plugins/fleet_contract.py: every pair of AWS groups
    a flow joins, per cell. The AWS groups: one per cell tier per cell (a-web,
    a-replica...), the primary, the ALB (elb), the bastion. The operators and the
    monitoring hosts (none in AWS) are the bastion as sources; a flow into the
    monitoring hosts admits nothing in AWS; the client is anyone; the
    ALB listens on http, and on https with a certificate; a flow to a party
    outside the VPC is egress to anywhere; every host and the bastion reach
    http/https anywhere (apt).
    """
    tiers, unions = CONTRACT["tiers"], CONTRACT["unions"]
    units = [(f"{cell}-{spec['cell']}", tier, cell) for cell in cells for tier, spec in tiers.items() if "cell" in spec]
    units += [("primary", "db_primary", None), ("alb", "elb", None)]
    hosts = [u for u in units if u[0] != "alb"]
    ins: dict[str, set] = {u[0]: set() for u in units} | {"bastion": set()}
    outs: dict[str, set] = {u[0]: set() for u in units} | {"bastion": set()}

    def ends(name: str, source: bool = False) -> list[tuple[str, str, str | None]]:
        if name == "all":
            return hosts
        if source and name in ("operator", "monitoring"):
            return [("bastion", "bastion", None)]
        return [u for u in units if u[1] in unions.get(name, [name])]

    for flow in CONTRACT["flows"]:
        if flow["to"] in ("backup_repository", "cloudfront"):
            for key, _, _ in ends(flow["from"], source=True) if flow["from"] != "client" else []:
                outs[key] |= {(PORT[p], PORT[p], ANYWHERE) for p in flow["ports"]}
            continue
        for dest, tier, cell in ends(flow["to"]):
            names = [p for p in flow["ports"] if p != "metrics"]
            names += tiers[tier]["metrics"] if "metrics" in flow["ports"] else []
            if dest == "alb":
                names = [p for p in names if p == "http" or (p == "https" and https)]
            if flow["from"] == "client":
                ins[dest] |= {(PORT[p], PORT[p], ANYWHERE) for p in names}
                continue
            for src, _, src_cell in ends(flow["from"], source=True):
                if flow.get("scope") == "cell" and src_cell != cell:
                    continue
                ins[dest] |= {(PORT[p], PORT[p], src) for p in names}
                outs[src] |= {(PORT[p], PORT[p], dest) for p in names}
    ins["bastion"].add((PORT["ssh"], PORT["ssh"], OPERATOR_CIDR))
    for key in [*(u[0] for u in hosts), "bastion"]:
        outs[key] |= {(PORT[p], PORT[p], ANYWHERE) for p in ("http", "https")}
    return ins, outs


def inventory(url: str, inv: Path) -> dict:
    proc = aws_run(["ansible-inventory", "-i", str(inv), "--list", "--flush-cache"], url)
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout))


def groups_of(listing: dict) -> dict[str, list[str]]:
    return {
        name: sorted(body.get("hosts", []))
        for name, body in listing.items()
        if name not in ("_meta", "all", "ungrouped", "aws_ec2")
    }


# --- bad input: a clear failure and nothing half-created ---------------------------


def test_bad_variables_fail_before_anything_exists(moto, aws_inventory):
    """Every bad variable is named in one failure, before any call to AWS."""
    bad = {
        "aws_region": "xx-nowhere-1",
        "aws_vpc_cidr": "10.40.0.0/33",
        "aws_operator_cidrs": ["not-a-cidr", "0.0.0.0/0"],
        "aws_cells": [*AWS["aws_cells"], {**AWS["aws_cells"][0], "name": "c", "az": 3}],
    }
    result = playbook(moto, aws_inventory, "provision.yml", **bad)
    assert result.rc != 0, result
    for message in (
        "aws_region: 'xx-nowhere-1' is not an AWS region",
        "aws_vpc_cidr: '10.40.0.0/33' is not an IPv4 network CIDR",
        "aws_operator_cidrs: 'not-a-cidr' is not an IPv4 network CIDR",
        # The inventory's environment is production: SSH to the bastion from everyone is refused.
        "aws_operator_cidrs: 0.0.0.0/0 would open SSH to the bastion to the whole internet; refused in production",
        "aws_cells[2].private_cidr: 10.40.1.0/24 overlaps a-private",
    ):
        assert message in result.out, result
    assert fleet_vpcs(moto) == []


def test_no_operator_cidr_fails_before_anything_exists(moto, aws_inventory):
    """An empty list would leave the bastion, the only way in, open to no one."""
    result = playbook(moto, aws_inventory, "provision.yml", aws_operator_cidr="")
    assert result.rc != 0, result
    assert "aws_operator_cidrs is empty (set aws_operator_cidr, or the list)" in result.out, result
    assert fleet_vpcs(moto) == []


def test_missing_credentials_fail_before_anything_exists(moto, aws_inventory):
    result = playbook(moto, aws_inventory, "provision.yml", unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    assert result.rc != 0, result
    assert "Unable to locate credentials" in result.out, result
    assert fleet_vpcs(moto) == []
    assert live_instances(moto) == {}


# --- the fleet ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provisioned(moto_endpoint, aws_inventory):
    reset_moto(moto_endpoint)
    result = playbook(moto_endpoint, aws_inventory, "provision.yml")
    assert result.rc == 0, result
    return result


def test_provision_builds_vpc_and_cell_subnets(moto_endpoint, provisioned):
    (vpc,) = fleet_vpcs(moto_endpoint)
    assert vpc["CidrBlock"] == AWS["aws_vpc_cidr"]
    ec2 = client(moto_endpoint, "ec2")
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    by_cidr = {s["CidrBlock"]: s for s in subnets}
    for cell in AWS["aws_cells"]:
        for kind in ("private", "public"):
            subnet = by_cidr[cell[f"{kind}_cidr"]]
            assert subnet["AvailabilityZone"] == zones[cell["az"] - 1]
            assert subnet["MapPublicIpOnLaunch"] is (kind == "public")
    assert [c["az"] for c in AWS["aws_cells"]] == [1, 2], "cell a in AZ 1, cell b in AZ 2"


def test_security_groups_are_the_contract_flows_per_cell(moto_endpoint, provisioned):
    """Rule for rule, ingress and egress, as worked out from the flows in this test."""
    cells = [c["name"] for c in AWS["aws_cells"]]
    want_in, want_out = contract_rules(cells, https=False)
    assert ingress(moto_endpoint) == want_in
    assert egress(moto_endpoint) == want_out


def test_security_groups_admit_only_the_cell_flows(moto_endpoint, provisioned):
    """The same, spelled out for cell a: each tier only from the one before it in its cell."""

    def rule(port: str, peer: str) -> tuple[int, int, str]:
        return (PORT[port], PORT[port], peer)

    ssh = rule("ssh", "bastion")
    found = ingress(moto_endpoint)
    # No certificate: the ALB listens on http only, and admits nothing else.
    assert found["alb"] == {rule("http", ANYWHERE)}
    assert found["a-web"] == {rule("http", "alb"), ssh}
    assert found["a-lb"] == {rule("lb_frontend", "a-web"), rule("lb_stats", "bastion"), ssh}
    assert found["a-app"] == {rule("app", "a-lb"), ssh}
    assert found["a-replica"] == {rule("postgres", "a-app"), ssh}
    assert found["primary"] == {rule("postgres", g) for g in ("a-app", "a-replica", "b-app", "b-replica")} | {ssh}
    assert found["bastion"] == {rule("ssh", OPERATOR_CIDR)}
    sent = egress(moto_endpoint)
    mirror = {rule("http", ANYWHERE), rule("https", ANYWHERE)}
    assert sent["a-web"] == {rule("lb_frontend", "a-lb")} | mirror
    assert sent["alb"] == {rule("http", "a-web"), rule("http", "b-web")}


def test_instances_are_tagged_for_the_inventory(moto_endpoint, provisioned):
    found = live_instances(moto_endpoint)
    assert sorted(found) == sorted({h for hosts in LAB_HOSTS.values() for h in hosts} | {"bastion"})
    sg_names = {
        g["GroupId"]: g["GroupName"] for g in client(moto_endpoint, "ec2").describe_security_groups()["SecurityGroups"]
    }
    subnet_cidr = {s["SubnetId"]: s["CidrBlock"] for s in client(moto_endpoint, "ec2").describe_subnets()["Subnets"]}
    cells = {c["name"]: c for c in AWS["aws_cells"]}
    for name, inst in found.items():
        tags = inst["TagMap"]
        kind = name.rstrip("0123456789")
        role = {"web": "web", "lb": "lb", "app": "app", "replica": "db", "primary": "db", "bastion": "bastion"}[kind]
        assert tags["Project"] == "fleet"
        assert tags["Environment"] == ENVIRONMENT
        assert tags["Role"] == role, name
        group = kind if kind in ("primary", "bastion") else f"{tags['Cell']}-{kind}"
        assert [sg_names[g["GroupId"]] for g in inst["SecurityGroups"]] == [f"{PREFIX}-{group}"], name
        assert inst["KeyName"] == PREFIX
        if name == "primary":
            assert "Cell" not in tags
            assert tags["DbRole"] == "primary"
            assert subnet_cidr[inst["SubnetId"]] == cells["a"]["private_cidr"], "the primary lives in cell a's AZ"
            continue
        if name == "bastion":
            assert "Cell" not in tags
            assert "DbRole" not in tags
            assert subnet_cidr[inst["SubnetId"]] == cells["a"]["public_cidr"], "the bastion lives in a public subnet"
            assert inst["PublicIpAddress"], "the bastion has a public address"
            assert inst["InstanceType"] == AWS["aws_bastion_instance_type"]
            continue
        cell = next(c for c, hosts in LAB_HOSTS.items() if c.startswith("cell_") and name in hosts)
        assert tags["Cell"] == cell.removeprefix("cell_"), name
        assert tags.get("DbRole") == ("replica" if role == "db" else None), name
        assert subnet_cidr[inst["SubnetId"]] == cells[tags["Cell"]]["private_cidr"]
        assert "PublicIpAddress" not in inst or not inst["PublicIpAddress"], name


def test_private_subnets_reach_the_internet_through_one_nat_gateway(moto_endpoint, provisioned):
    ec2 = client(moto_endpoint, "ec2")
    (vpc,) = fleet_vpcs(moto_endpoint)
    subnets = {s["CidrBlock"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["NatGateways"]
    (nat,) = [n for n in nats if n["State"] in ("pending", "available")]
    assert nat["SubnetId"] == subnets[AWS["aws_cells"][0]["public_cidr"]], "in the first cell's public subnet"
    assert {t["Key"]: t["Value"] for t in nat["Tags"]}["Environment"] == ENVIRONMENT
    (address,) = nat["NatGatewayAddresses"]
    (eip,) = ec2.describe_addresses(AllocationIds=[address["AllocationId"]])["Addresses"]
    assert {t["Key"]: t["Value"] for t in eip["Tags"]}["Project"] == "fleet", "the elastic IP is tagged"
    tables = {
        {t["Key"]: t["Value"] for t in rt["Tags"]}.get("Name"): rt
        for rt in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["RouteTables"]
    }

    def default_route(name: str) -> dict:
        (route,) = [r for r in tables[name]["Routes"] if r.get("DestinationCidrBlock") == ANYWHERE]
        return route

    def associated(name: str) -> set[str]:
        return {a["SubnetId"] for a in tables[name]["Associations"] if a.get("SubnetId")}

    assert default_route(f"{PREFIX}-private")["NatGatewayId"] == nat["NatGatewayId"]
    assert associated(f"{PREFIX}-private") == {subnets[c["private_cidr"]] for c in AWS["aws_cells"]}
    assert default_route(f"{PREFIX}-public")["GatewayId"].startswith("igw-")
    assert associated(f"{PREFIX}-public") == {subnets[c["public_cidr"]] for c in AWS["aws_cells"]}


def test_alb_forwards_to_the_four_web_servers(moto_endpoint, provisioned):
    elb = client(moto_endpoint, "elbv2")
    (alb,) = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"]
    assert alb["Scheme"] == "internet-facing"
    (tg,) = elb.describe_target_groups(Names=[f"{PREFIX}-web"])["TargetGroups"]
    # The app's liveness through nginx and the cell's LB, the path the lab's ELB checks.
    assert tg["HealthCheckPath"] == "/livez"
    assert tg["HealthCheckIntervalSeconds"] == AWS["aws_alb_health_check_interval"]
    assert tg["HealthCheckTimeoutSeconds"] == AWS["aws_alb_health_check_timeout"]
    assert tg["UnhealthyThresholdCount"] == AWS["aws_alb_unhealthy_threshold"]
    assert tg["HealthyThresholdCount"] == AWS["aws_alb_healthy_threshold"]
    assert tg["Port"] == PORT["http"]
    targets = {
        t["Target"]["Id"]
        for t in elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    }
    found = live_instances(moto_endpoint)
    assert targets == {found[h]["InstanceId"] for h in LAB_HOSTS["web"]}
    listeners = elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    # No certificate ARN by default: plain HTTP forwarded to the web servers.
    assert [(x["Protocol"], x["Port"], x["DefaultActions"][0]["Type"]) for x in listeners] == [
        ("HTTP", PORT["http"], "forward")
    ]


def test_second_run_changes_nothing(moto_endpoint, aws_inventory, provisioned):
    result = playbook(moto_endpoint, aws_inventory, "provision.yml")
    assert result.rc == 0, result
    assert result.changed == 0, result


def test_inventory_groups_hosts_like_the_lab(moto_endpoint, aws_inventory, provisioned):
    listing = inventory(moto_endpoint, aws_inventory)
    # And the bastion, in a group of its own: no tier, no cell.
    assert groups_of(listing) == {**LAB_HOSTS, "bastion": ["bastion"]}
    hostvars = listing["_meta"]["hostvars"]
    found = live_instances(moto_endpoint)
    assert hostvars["web1"]["ansible_host"] == found["web1"]["PrivateIpAddress"]
    assert hostvars["primary"]["ec2_tags"]["DbRole"] == "primary"
    # The wiring filters resolve over these groups exactly as over the lab's.
    proc = aws_run(
        [
            "ansible",
            "-i",
            str(aws_inventory),
            "localhost",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ groups | fleet_cell_map | to_json }}",
        ],
        moto_endpoint,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"lb": ["lb2"]' in proc.stdout.replace("\\", "")


def connection_vars(url: str, inv: Path, *args: str) -> dict[str, dict]:
    """What Ansible uses to reach web1, primary and the bastion, and the firewalls' networks, per host."""
    names = ("ansible_host", "ansible_user", "ansible_ssh_common_args", "fleet_operator_networks", "fleet_elb_networks")
    task = json.dumps({"msg": "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} }}"})
    cmd = ["ansible", "-i", str(inv), "web1:primary:bastion", "-m", "ansible.builtin.debug", "-a", task, *args]
    # The JSON callback: the answer as data, not as wrapped YAML text (between
    # the lines of ansible.cfg's profile_tasks, which prints too).
    proc = aws_run(cmd, url, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = re.search(r"^\{$.*?^\}$", proc.stdout, re.M | re.S).group(0)
    hosts = json.loads(document)["plays"][0]["tasks"][0]["hosts"]
    return {host: plain(result["msg"]) for host, result in hosts.items()}


def test_inventory_jumps_through_the_bastion(moto_endpoint, aws_inventory, provisioned):
    bastion = live_instances(moto_endpoint)["bastion"]
    found = connection_vars(moto_endpoint, aws_inventory)
    jump = f"-o ProxyJump=admin@{bastion['PublicIpAddress']}"
    assert found["web1"]["ansible_ssh_common_args"] == jump
    assert found["primary"]["ansible_ssh_common_args"] == jump
    assert found["bastion"]["ansible_host"] == bastion["PublicIpAddress"]
    assert found["bastion"]["ansible_ssh_common_args"] == "", "the bastion itself is reached directly"
    assert found["bastion"]["ansible_user"] == "admin"
    # The host firewalls admit SSH from the bastion's subnet, HTTP from the ALB's subnets.
    assert found["web1"]["fleet_operator_networks"] == [AWS["aws_cells"][0]["public_cidr"]]
    assert found["web1"]["fleet_elb_networks"] == [c["public_cidr"] for c in AWS["aws_cells"]]
    other = connection_vars(moto_endpoint, aws_inventory, "-e", "aws_bastion=admin@bastion.example.com")
    assert other["web1"]["ansible_ssh_common_args"] == "-o ProxyJump=admin@bastion.example.com"


def test_inventory_cache_is_used_until_flushed(moto_endpoint, aws_inventory, provisioned):
    """An instance started after the inventory was cached is not shown until --flush-cache asks AWS again."""

    def hosts(*flags: str) -> set[str]:
        proc = aws_run(["ansible-inventory", "-i", str(aws_inventory), "--list", *flags], moto_endpoint)
        assert proc.returncode == 0, proc.stderr
        return set(json.loads(proc.stdout)["_meta"]["hostvars"])

    fleet = {h for group in LAB_HOSTS.values() for h in group} | {"bastion"}
    assert hosts("--flush-cache") == fleet
    web1 = live_instances(moto_endpoint)["web1"]
    tags = {**web1["TagMap"], "Name": "web9"}
    ec2 = client(moto_endpoint, "ec2")
    (started,) = ec2.run_instances(
        ImageId=MOTO_AMI,
        MinCount=1,
        MaxCount=1,
        SubnetId=web1["SubnetId"],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["Instances"]
    try:
        assert "web9" in live_instances(moto_endpoint), "moto does not list the new instance as running"
        assert hosts() == fleet, "the inventory asked AWS instead of answering from its cache"
        assert hosts("--flush-cache") == fleet | {"web9"}, "--flush-cache did not ask AWS again"
    finally:
        ec2.terminate_instances(InstanceIds=[started["InstanceId"]])


def test_cell_c_and_a_certificate_are_variable_changes(moto_endpoint, aws_inventory, provisioned):
    """One run (to spare a minute): a third cell, HTTPS on the ALB with HTTP redirected, and drift.

    provision.yml touches only the security groups that differ from the plan:
    a rule added by hand to a-web must be found and removed in the same run.
    """
    cell_c = {"name": "c", "az": 3, "private_cidr": "10.40.3.0/24", "public_cidr": "10.40.103.0/24"}
    certificate = client(moto_endpoint, "acm").request_certificate(DomainName=f"www.{AWS['aws_domain']}")
    before = live_instances(moto_endpoint)
    rules_before = ingress(moto_endpoint)
    ec2 = client(moto_endpoint, "ec2")
    sg_ids = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    https = {
        "IpProtocol": "tcp",
        "FromPort": PORT["https"],
        "ToPort": PORT["https"],
        "IpRanges": [{"CidrIp": ANYWHERE}],
    }
    ec2.authorize_security_group_ingress(GroupId=sg_ids[f"{PREFIX}-a-web"], IpPermissions=[https])
    result = playbook(
        moto_endpoint,
        aws_inventory,
        "provision.yml",
        aws_cells=[*AWS["aws_cells"], cell_c],
        aws_certificate_arn=certificate["CertificateArn"],
    )
    assert result.rc == 0, result
    after = live_instances(moto_endpoint)
    assert sorted(set(after) - set(before)) == sorted(["web5", "web6", "lb3", "app5", "app6", "replica3"])
    assert {after[h]["InstanceId"] for h in before} == {i["InstanceId"] for i in before.values()}
    assert after["web5"]["TagMap"]["Cell"] == "c"
    # Exactly cell c's groups are new; the primary admits c's app and replica too;
    # with the certificate the ALB (and only the ALB) admits https.
    rules_after = ingress(moto_endpoint)
    assert set(rules_after) - set(rules_before) == {"c-web", "c-lb", "c-app", "c-replica"}
    postgres = PORT["postgres"]
    assert rules_after["primary"] - rules_before["primary"] == {
        (postgres, postgres, "c-app"),
        (postgres, postgres, "c-replica"),
    }
    assert rules_after["alb"] - rules_before["alb"] == {(PORT["https"], PORT["https"], ANYWHERE)}
    assert rules_after["a-web"] == rules_before["a-web"], "the rule added by hand is gone"
    want_in, want_out = contract_rules(["a", "b", "c"], https=True)
    assert rules_after == want_in
    assert egress(moto_endpoint) == want_out
    sg_names = {
        g["GroupId"]: g["GroupName"] for g in client(moto_endpoint, "ec2").describe_security_groups()["SecurityGroups"]
    }
    assert [sg_names[g["GroupId"]] for g in after["replica3"]["SecurityGroups"]] == [f"{PREFIX}-c-replica"]
    groups = groups_of(inventory(moto_endpoint, aws_inventory))
    assert groups["cell_c"] == sorted(["web5", "web6", "lb3", "app5", "app6", "replica3"])
    elb = client(moto_endpoint, "elbv2")
    (tg,) = elb.describe_target_groups(Names=[f"{PREFIX}-web"])["TargetGroups"]
    targets = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert len(targets) == 6
    (alb,) = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"]
    listeners = {x["Protocol"]: x for x in elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]}
    assert set(listeners) == {"HTTP", "HTTPS"}
    assert listeners["HTTPS"]["Port"] == PORT["https"]
    assert listeners["HTTPS"]["Certificates"][0]["CertificateArn"] == certificate["CertificateArn"]
    assert listeners["HTTPS"]["DefaultActions"][0]["Type"] == "forward"
    redirect = listeners["HTTP"]["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert redirect["RedirectConfig"]["Port"] == str(PORT["https"])


def test_teardown_refuses_without_confirmation(moto_endpoint, aws_inventory, provisioned):
    for confirm in ({}, {"aws_teardown_confirm": "staging"}):
        result = playbook(moto_endpoint, aws_inventory, "teardown.yml", **confirm)
        assert result.rc != 0, result
        assert f"aws_teardown_confirm={ENVIRONMENT}" in result.out
    assert len(live_instances(moto_endpoint)) >= 14


def test_teardown_removes_everything(moto_endpoint, aws_inventory, provisioned):
    result = playbook(moto_endpoint, aws_inventory, "teardown.yml", aws_teardown_confirm=ENVIRONMENT)
    assert result.rc == 0, result
    ec2 = client(moto_endpoint, "ec2")
    assert live_instances(moto_endpoint) == {}
    assert fleet_vpcs(moto_endpoint) == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"] == []
    assert ec2.describe_addresses()["Addresses"] == [], "the NAT gateway's elastic IP is released"
    elb = client(moto_endpoint, "elbv2")
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    assert groups_of(inventory(moto_endpoint, aws_inventory)) == {}
