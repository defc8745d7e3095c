"""The edge against a local moto: the OAC module, s3.yml, cloudfront.yml, route53.yml and edge.yml.

Route53 needs the fleet's ALB; building the whole fleet here would double the
suite's time, so the ALB is created directly in moto, as provision.yml names it.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.aws.conftest import REGION, aws_run, client, enforce_iam, moto_server, playbook, reset_moto
from tests.conftest import ROOT

pytestmark = pytest.mark.aws

FLEET = yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text())
AWS = yaml.safe_load((ROOT / "group_vars" / "all" / "aws.yml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "inventories" / "aws" / "group_vars" / "all.yml").read_text())["fleet_environment"]
PREFIX = f"{FLEET['fleet_project']}-{ENVIRONMENT}"
BUCKET = f"{PREFIX}-static-assets"
DOMAIN = AWS["aws_domain"]
STATIC = ROOT / "tests" / "fixtures" / "static"
CONTENT_TYPES = {
    "index.html": "text/html",
    "site.css": "text/css",
    "site.js": "text/javascript",
    "img/logo.png": "image/png",
}
TASK = re.compile(r"^TASK \[(?P<name>[^\]]+)\]", re.M)


def failed_task(output: str) -> str | None:
    """The name of the task that failed (the last one, if several did)."""
    failed, current = None, None
    for line in output.splitlines():
        match = TASK.match(line)
        if match:
            current = match["name"]
        elif line.startswith("fatal:"):
            failed = current
    return failed


def changed_tasks(output: str) -> list[str]:
    """Names of the tasks that reported a change, in order."""
    names, current = [], None
    for line in output.splitlines():
        match = TASK.match(line)
        if match:
            current = match["name"]
        elif line.startswith("changed:") and current and (not names or names[-1] != current):
            names.append(current)
    return names


# --- the Origin Access Control module ----------------------------------------------


def controls(url: str) -> dict[str, dict]:
    items = client(url, "cloudfront").list_origin_access_controls()["OriginAccessControlList"].get("Items", [])
    return {item["Name"]: item for item in items}


def test_oac_module_creates_updates_and_deletes_with_check_mode(moto):
    """Create, update and delete, each in check mode first: tests/aws/oac_module.yml asserts every step."""
    cmd = ["ansible-playbook", "-i", "localhost,", str(Path(__file__).with_name("oac_module.yml"))]
    proc = aws_run([*cmd, "-e", f"aws_endpoint_url={moto}"], moto)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr
    assert "All assertions passed" in proc.stdout
    assert controls(moto) == {}


def test_oac_module_rejects_bad_input(moto):
    cmd = ["ansible", "-i", "localhost,", "localhost", "-c", "local", "-m", "cloudfront_origin_access_control"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}"]
    cmd += ["-a", json.dumps({"name": "x", "signing_behavior": "sometimes", "endpoint_url": moto})]
    proc = aws_run(cmd, moto)
    assert proc.returncode != 0
    assert "signing_behavior" in proc.stdout
    assert controls(moto) == {}


# --- bad input to the playbooks --------------------------------------------------------


@pytest.mark.parametrize("bucket", ["Fleet_Assets", "ab", "192.168.1.10", "fleet..assets", "xn--fleet"])
def test_s3_rejects_bucket_names_s3_would_reject(moto, aws_inventory, bucket):
    result = playbook(moto, aws_inventory, "s3.yml", aws_static_bucket=bucket, s3_static_dir=str(STATIC))
    assert result.rc != 0, result
    assert "is not a name S3 accepts" in result.out, result
    assert client(moto, "s3").list_buckets()["Buckets"] == []


def test_route53_rejects_a_zone_that_is_not_a_domain(moto, aws_inventory):
    result = playbook(moto, aws_inventory, "route53.yml", aws_domain="not a domain")
    assert result.rc != 0, result
    assert "is not a domain name" in result.out, result
    assert client(moto, "route53").list_hosted_zones()["HostedZones"] == []


def test_route53_names_what_is_missing(moto, aws_inventory):
    """No ALB of the fleet's name and no distribution: the failure says which playbook makes each."""
    # Another environment's ALB is not the fleet's.
    make_alb(moto, name=f"{FLEET['fleet_project']}-staging")
    result = playbook(moto, aws_inventory, "route53.yml")
    assert result.rc != 0, result
    assert failed_task(result.out) == "Fail unless the ALB and the distribution exist", result
    assert f"the ALB {PREFIX} (missing: run provision.yml)" in result.out, result
    assert f'the distribution "{PREFIX} static assets" (missing: run cloudfront.yml)' in result.out, result
    assert client(moto, "route53").list_hosted_zones()["HostedZones"] == []


@pytest.fixture(scope="module")
def alb_unreadable(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A second moto, enforcing IAM, holding the fleet's ALB and an operator not allowed to read it.

    Only ELBv2 goes there (AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2): under IAM
    enforcement moto rejects the signature of every CloudFront and Route53 GET
    (it signs the headers as the body), so those stay on the shared moto.
    """
    with moto_server(tmp_path_factory.mktemp("moto-iam") / "moto.log") as url:
        make_alb(url)
        iam = client(url, "iam")
        iam.create_user(UserName="dns-operator")
        # DNS and CDN, and no elasticloadbalancing action at all.
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["route53:*", "cloudfront:*"], "Resource": "*"}],
        }
        iam.put_user_policy(UserName="dns-operator", PolicyName="edge-dns", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dns-operator")["AccessKey"]
        enforce_iam(url)
        yield {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2": url,
        }


def test_route53_fails_with_the_apis_error_when_the_alb_cannot_be_read(moto, aws_inventory, alb_unreadable):
    """Access denied is reported as the API says it, not as "missing: run provision.yml"."""
    # No aws_endpoint_url: each service's endpoint comes from botocore's settings.
    result = playbook(moto, aws_inventory, "route53.yml", env=alb_unreadable, aws_endpoint_url=None)
    assert result.rc != 0, result
    assert "missing: run" not in result.out
    assert failed_task(result.out) == "Find the ALB", result
    assert "(AccessDenied) when calling the DescribeLoadBalancers operation" in result.out, result
    assert "user/dns-operator is not authorized to perform: elasticloadbalancing:DescribeLoadBalancers" in result.out
    assert client(moto, "route53").list_hosted_zones()["HostedZones"] == []


# --- the edge, end to end ---------------------------------------------------------------


def make_alb(url: str, name: str = PREFIX) -> dict:
    """The ALB provision.yml would have made (or one of another name), built directly in moto."""
    ec2 = client(url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{101 + i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab")
    ]
    return client(url, "elbv2").create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory) -> Path:
    """A copy of the fixture files the tests may change."""
    target = tmp_path_factory.mktemp("static") / "static"
    shutil.copytree(STATIC, target)
    return target


@pytest.fixture(scope="module")
def edge(moto_endpoint, aws_inventory, static_dir):
    reset_moto(moto_endpoint)
    alb = make_alb(moto_endpoint)
    # -vvv shows each module's invocation: the proof that the OAC id reaches
    # cloudfront_distribution, which moto does not store.
    result = playbook(moto_endpoint, aws_inventory, "edge.yml", "-vvv", s3_static_dir=str(static_dir))
    assert result.rc == 0, result
    return {"alb": alb, "result": result}


def distribution(url: str) -> dict:
    cloudfront = client(url, "cloudfront")
    (summary,) = cloudfront.list_distributions()["DistributionList"]["Items"]
    return cloudfront.get_distribution(Id=summary["Id"])["Distribution"]


def test_bucket_is_private_versioned_encrypted_and_expires_old_versions(moto_endpoint, edge):
    s3 = client(moto_endpoint, "s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    ownership = s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == AWS["aws_static_noncurrent_days"]


def test_objects_carry_content_type_and_cache_control(moto_endpoint, edge):
    s3 = client(moto_endpoint, "s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == set(CONTENT_TYPES)
    for key, content_type in CONTENT_TYPES.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == content_type, key
        wanted = AWS["aws_static_cache_control_html" if key.endswith(".html") else "aws_static_cache_control_assets"]
        assert head["CacheControl"] == wanted, key


def test_distribution_reaches_the_bucket_through_the_oac(moto_endpoint, edge):
    dist = distribution(moto_endpoint)
    config = dist["DistributionConfig"]
    (origin,) = config["Origins"]["Items"]
    assert origin["DomainName"] == f"{BUCKET}.s3.{REGION}.amazonaws.com"
    # No legacy Origin Access Identity (moto omits an empty S3OriginConfig).
    assert origin.get("S3OriginConfig", {}).get("OriginAccessIdentity", "") == ""
    (control,) = controls(moto_endpoint).values()
    assert control["Name"] == f"{PREFIX}-static"
    # moto drops OriginAccessControlId from stored origins (docs/aws.md): prove
    # instead that the module was called with it.
    assert f"origin_access_control_id: {control['Id']}" in edge["result"].out
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    patterns = [b["PathPattern"] for b in config["CacheBehaviors"].get("Items", [])]
    assert patterns == AWS["aws_cloudfront_asset_patterns"]
    assert config["DefaultRootObject"] == "index.html"


def test_bucket_policy_admits_only_the_distribution(moto_endpoint, edge):
    dist = distribution(moto_endpoint)
    policy = json.loads(client(moto_endpoint, "s3").get_bucket_policy(Bucket=BUCKET)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == f"arn:aws:s3:::{BUCKET}/*"
    assert statement["Condition"] == {"StringEquals": {"AWS:SourceArn": dist["ARN"]}}


def test_first_upload_is_invalidated(moto_endpoint, edge):
    dist = distribution(moto_endpoint)
    cloudfront = client(moto_endpoint, "cloudfront")
    (inv,) = cloudfront.list_invalidations(DistributionId=dist["Id"])["InvalidationList"]["Items"]
    paths = cloudfront.get_invalidation(DistributionId=dist["Id"], Id=inv["Id"])["Invalidation"]
    assert sorted(paths["InvalidationBatch"]["Paths"]["Items"]) == sorted(f"/{k}" for k in CONTENT_TYPES)


def test_records_point_at_the_alb_and_cloudfront(moto_endpoint, edge):
    route53 = client(moto_endpoint, "route53")
    (zone,) = route53.list_hosted_zones_by_name(DNSName=DOMAIN)["HostedZones"]
    assert zone["Name"] == f"{DOMAIN}."
    records = {
        (r["Name"], r["Type"]): r
        for r in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    }
    alb, dist = edge["alb"], distribution(moto_endpoint)
    for kind in ("A", "AAAA"):
        site = records[(f"www.{DOMAIN}.", kind)]["AliasTarget"]
        assert site["DNSName"].rstrip(".") == alb["DNSName"]
        assert site["HostedZoneId"] == alb["CanonicalHostedZoneId"]
        assert site["EvaluateTargetHealth"] is True
        static = records[(f"static.{DOMAIN}.", kind)]["AliasTarget"]
        assert static["DNSName"].rstrip(".") == dist["DomainName"]
        assert static["HostedZoneId"] == "Z2FDTNDATAQYW2"
    (check,) = route53.list_health_checks()["HealthChecks"]
    config = check["HealthCheckConfig"]
    assert config["FullyQualifiedDomainName"] == f"www.{DOMAIN}"
    assert config["Type"] == "HTTP"
    assert config["ResourcePath"] == "/livez"  # the same liveness path as the ALB
    assert config["RequestInterval"] == AWS["aws_health_check_interval"]


def test_second_run_uploads_and_invalidates_nothing(moto_endpoint, aws_inventory, edge, static_dir):
    result = playbook(moto_endpoint, aws_inventory, "edge.yml", s3_static_dir=str(static_dir))
    assert result.rc == 0, result
    # cloudfront_distribution reports a change on every run against moto
    # (docs/aws.md); every other task must be unchanged.
    assert changed_tasks(result.out) == ["Create the distribution"], result
    assert "Invalidate the paths that changed" in result.out
    dist = distribution(moto_endpoint)
    invalidations = client(moto_endpoint, "cloudfront").list_invalidations(DistributionId=dist["Id"])
    assert invalidations["InvalidationList"]["Quantity"] == 1
    assert len(client(moto_endpoint, "cloudfront").list_distributions()["DistributionList"]["Items"]) == 1


def test_a_changed_file_is_uploaded_and_invalidated_alone(moto_endpoint, aws_inventory, edge, static_dir):
    (static_dir / "site.css").write_text("body { font-family: serif; }\n")
    # Route53 is not involved: skip its play to save a minute.
    result = playbook(moto_endpoint, aws_inventory, "edge.yml", "--skip-tags", "route53", s3_static_dir=str(static_dir))
    assert result.rc == 0, result
    assert "Invalidate the paths that changed" in changed_tasks(result.out)
    dist = distribution(moto_endpoint)
    cloudfront = client(moto_endpoint, "cloudfront")
    items = cloudfront.list_invalidations(DistributionId=dist["Id"])["InvalidationList"]["Items"]
    assert len(items) == 2
    latest = [cloudfront.get_invalidation(DistributionId=dist["Id"], Id=i["Id"])["Invalidation"] for i in items]
    batches = sorted(tuple(x["InvalidationBatch"]["Paths"]["Items"]) for x in latest)
    assert ("/site.css",) in batches
    body = client(moto_endpoint, "s3").get_object(Bucket=BUCKET, Key="site.css")["Body"].read()
    assert body == b"body { font-family: serif; }\n"
