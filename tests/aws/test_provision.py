"""playbooks/provision.yml, inventories/aws and playbooks/teardown.yml against a local moto.

The tests of this module build on one another, in order: bad input creates
nothing, provisioning builds the fleet, a second run changes nothing, the
inventory groups it like the lab, cell c is a variable change, teardown
refuses without confirmation and then removes everything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.aws.conftest import MOTO_AMI, OPERATOR_CIDR, aws_run, client, playbook, reset_moto
from tests.conftest import ROOT, plain

pytestmark = pytest.mark.aws

FLEET = yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text())
AWS = yaml.safe_load((ROOT / "group_vars" / "all" / "aws.yml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "inventories" / "aws" / "group_vars" / "all.yml").read_text())["fleet_environment"]
PREFIX = f"{FLEET['fleet_project']}-{ENVIRONMENT}"
PORT = {k.removeprefix("fleet_port_"): v for k, v in FLEET.items() if k.startswith("fleet_port_")}

LAB_HOSTS = {
    "web": ["web1", "web2", "web3", "web4"],
    "lb": ["lb1", "lb2"],
    "app": ["app1", "app2", "app3", "app4"],
    "db": ["primary", "replica1", "replica2"],
    "db_primary": ["primary"],
    "db_replicas": ["replica1", "replica2"],
    "cell_a": ["app1", "app2", "lb1", "replica1", "web1", "web2"],
    "cell_b": ["app3", "app4", "lb2", "replica2", "web3", "web4"],
}


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


def ingress(url: str) -> dict[str, set[tuple[int, int, str]]]:
    """Every fleet security group's ingress as (from port, to port, source group name or CIDR)."""
    groups = client(url, "ec2").describe_security_groups(Filters=[{"Name": "tag:Project", "Values": ["fleet"]}])[
        "SecurityGroups"
    ]
    names = {g["GroupId"]: g["GroupName"] for g in groups}
    rules: dict[str, set[tuple[int, int, str]]] = {}
    for group in groups:
        found = rules.setdefault(group["GroupName"].removeprefix(PREFIX + "-"), set())
        for perm in group["IpPermissions"]:
            assert perm["IpProtocol"] == "tcp", perm
            for pair in perm.get("UserIdGroupPairs", []):
                found.add((perm["FromPort"], perm["ToPort"], names[pair["GroupId"]].removeprefix(PREFIX + "-")))
            for cidr in perm.get("IpRanges", []):
                found.add((perm["FromPort"], perm["ToPort"], cidr["CidrIp"]))
            assert not perm.get("Ipv6Ranges"), perm
    return rules


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
        "aws_operator_cidr": "not-a-cidr",
        "aws_cells": [*AWS["aws_cells"], {**AWS["aws_cells"][0], "name": "c", "az": 3}],
    }
    result = playbook(moto, aws_inventory, "provision.yml", **bad)
    assert result.rc != 0, result
    for message in (
        "aws_region: 'xx-nowhere-1' is not an AWS region",
        "aws_vpc_cidr: '10.40.0.0/33' is not an IPv4 network CIDR",
        "aws_operator_cidr: 'not-a-cidr' is not an IPv4 network CIDR",
        "aws_cells[2].private_cidr: 10.40.1.0/24 overlaps a-private",
    ):
        assert message in result.out, result
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


def test_security_groups_admit_exactly_the_contract_flows(moto_endpoint, provisioned):
    ssh = (PORT["ssh"], PORT["ssh"], OPERATOR_CIDR)
    assert ingress(moto_endpoint) == {
        "alb": {(PORT["http"], PORT["http"], "0.0.0.0/0"), (PORT["https"], PORT["https"], "0.0.0.0/0")},
        "web": {(PORT["http"], PORT["http"], "alb"), (PORT["https"], PORT["https"], "alb"), ssh},
        "lb": {(PORT["lb_frontend"], PORT["lb_frontend"], "web"), ssh},
        "app": {(PORT["app"], PORT["app"], "lb"), ssh},
        "db": {(PORT["postgres"], PORT["postgres"], "app"), (PORT["postgres"], PORT["postgres"], "db"), ssh},
    }


def test_instances_are_tagged_for_the_inventory(moto_endpoint, provisioned):
    found = live_instances(moto_endpoint)
    assert sorted(found) == sorted({h for hosts in LAB_HOSTS.values() for h in hosts})
    sg_names = {
        g["GroupId"]: g["GroupName"] for g in client(moto_endpoint, "ec2").describe_security_groups()["SecurityGroups"]
    }
    subnet_cidr = {s["SubnetId"]: s["CidrBlock"] for s in client(moto_endpoint, "ec2").describe_subnets()["Subnets"]}
    cells = {c["name"]: c for c in AWS["aws_cells"]}
    for name, inst in found.items():
        tags = inst["TagMap"]
        role = {"web": "web", "lb": "lb", "app": "app", "replica": "db", "primary": "db"}[name.rstrip("0123456789")]
        assert tags["Project"] == "fleet"
        assert tags["Environment"] == ENVIRONMENT
        assert tags["Role"] == role, name
        assert [sg_names[g["GroupId"]] for g in inst["SecurityGroups"]] == [f"{PREFIX}-{role}"]
        assert inst["KeyName"] == PREFIX
        if name == "primary":
            assert "Cell" not in tags
            assert tags["DbRole"] == "primary"
            assert subnet_cidr[inst["SubnetId"]] == cells["a"]["private_cidr"], "the primary lives in cell a's AZ"
            continue
        cell = next(c for c, hosts in LAB_HOSTS.items() if c.startswith("cell_") and name in hosts)
        assert tags["Cell"] == cell.removeprefix("cell_"), name
        assert tags.get("DbRole") == ("replica" if role == "db" else None), name
        assert subnet_cidr[inst["SubnetId"]] == cells[tags["Cell"]]["private_cidr"]
        assert "PublicIpAddress" not in inst or not inst["PublicIpAddress"], name


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
    assert groups_of(listing) == LAB_HOSTS
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


def test_inventory_bastion_is_optional(moto_endpoint, aws_inventory, provisioned):
    direct = aws_run(["ansible-inventory", "-i", str(aws_inventory), "--host", "web1"], moto_endpoint)
    assert direct.returncode == 0, direct.stderr
    proc = aws_run(
        [
            "ansible",
            "-i",
            str(aws_inventory),
            "web1",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "var=ansible_ssh_common_args",
            "-e",
            "aws_bastion=admin@bastion.example.com",
        ],
        moto_endpoint,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "-o ProxyJump=admin@bastion.example.com" in proc.stdout


def test_inventory_cache_is_used_until_flushed(moto_endpoint, aws_inventory, provisioned):
    """An instance started after the inventory was cached is not shown until --flush-cache asks AWS again."""

    def hosts(*flags: str) -> set[str]:
        proc = aws_run(["ansible-inventory", "-i", str(aws_inventory), "--list", *flags], moto_endpoint)
        assert proc.returncode == 0, proc.stderr
        return set(json.loads(proc.stdout)["_meta"]["hostvars"])

    fleet = {h for group in LAB_HOSTS.values() for h in group}
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
    """One run (to spare a minute): a third cell, and HTTPS on the ALB with HTTP redirected."""
    cell_c = {"name": "c", "az": 3, "private_cidr": "10.40.3.0/24", "public_cidr": "10.40.103.0/24"}
    certificate = client(moto_endpoint, "acm").request_certificate(DomainName=f"www.{AWS['aws_domain']}")
    before = live_instances(moto_endpoint)
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
    assert len(live_instances(moto_endpoint)) >= 13


def test_teardown_removes_everything(moto_endpoint, aws_inventory, provisioned):
    result = playbook(moto_endpoint, aws_inventory, "teardown.yml", aws_teardown_confirm=ENVIRONMENT)
    assert result.rc == 0, result
    ec2 = client(moto_endpoint, "ec2")
    assert live_instances(moto_endpoint) == {}
    assert fleet_vpcs(moto_endpoint) == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    elb = client(moto_endpoint, "elbv2")
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    assert groups_of(inventory(moto_endpoint, aws_inventory)) == {}
