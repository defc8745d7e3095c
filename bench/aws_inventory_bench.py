#!/usr/bin/env python3
"""Benchmark the AWS inventory at fleet scale: inventories/aws over N instances on moto.

    .venv/bin/python -m bench.aws_inventory_bench [--instances 2000] [--runs 3]

Starts a moto server on 127.0.0.1 (nothing else is contacted), launches N
instances tagged as playbooks/provision.yml tags them (Project, Environment,
Role, Cell, DbRole, Name) across as many cells as N needs, then times
`ansible-inventory --list` with the operator's inventory file: uncached
(`--flush-cache`: every instance asked of AWS) and cached (the five-minute
jsonfile cache the inventory keeps). Prints medians with min-max and checks the
listing has every host in its groups.
"""

from __future__ import annotations

import argparse
import json
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import boto3

from tests.aws.conftest import MOTO_AMI, REGION, aws_run, moto_server, operator_inventory

# One cell's hosts and their tags, as provision.yml makes them (the primary is added once).
CELL = [("web", 2), ("lb", 1), ("app", 2), ("db", 1)]


def cell_names(count: int) -> list[str]:
    """a, b, ..., z, aa, ab, ...: as many cell letters as asked for."""
    names = list(string.ascii_lowercase)
    while len(names) < count:
        names += [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]
    return names[:count]


def launch(url: str, instances: int) -> dict[str, int]:
    """N instances tagged like provision.yml's; returns how many hosts each group should have."""
    ec2 = boto3.client(
        "ec2", region_name=REGION, endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    per_cell = sum(n for _, n in CELL)
    cells = cell_names(max(1, (instances - 1 + per_cell - 1) // per_cell))
    plan = [("primary", {"Role": "db", "DbRole": "primary"})]
    counters = {"web": 0, "lb": 0, "app": 0, "db": 0}
    for cell in cells:
        for role, n in CELL:
            for _ in range(n):
                counters[role] += 1
                name = f"replica{counters['db']}" if role == "db" else f"{role}{counters[role]}"
                tags = {"Role": role, "Cell": cell} | ({"DbRole": "replica"} if role == "db" else {})
                plan.append((name, tags))
    plan = plan[:instances]
    for name, tags in plan:
        all_tags = {"Project": "fleet", "Environment": "production", "Name": name, **tags}
        ec2.run_instances(
            ImageId=MOTO_AMI,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}
            ],
        )
    expected: dict[str, int] = {}
    for _, tags in plan:
        expected[tags["Role"]] = expected.get(tags["Role"], 0) + 1
    expected["db_primary"] = 1
    expected["db_replicas"] = expected.get("db", 1) - 1
    return expected


def timed(cmd: list[str], url: str) -> tuple[float, dict]:
    """Run an ansible command as the AWS tests do (moto's fake credentials, nothing else of AWS)."""
    t0 = time.monotonic()
    proc = aws_run(cmd, url)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"[bench] {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aws_inventory_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.instances < 1 or args.runs < 1:
        parser.error("--instances and --runs must be 1 or more")
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp) / "moto.log") as url:
        inv = operator_inventory(Path(tmp) / "aws", url)
        t0 = time.monotonic()
        expected = launch(url, args.instances)
        print(f"[bench] launched {args.instances} instances on moto in {time.monotonic() - t0:.0f} s")
        listing = ["ansible-inventory", "-i", str(inv), "--list"]
        uncached, cached = [], []
        for _ in range(args.runs):
            seconds, data = timed([*listing, "--flush-cache"], url)
            uncached.append(seconds)
            for _ in range(3):
                seconds, cached_data = timed(listing, url)
                cached.append(seconds)
            assert cached_data == data, "the cached listing differs from the one AWS gave"
        hosts = len(data["_meta"]["hostvars"])
        got = {group: len(data.get(group, {}).get("hosts", [])) for group in expected}
        if hosts != args.instances or got != expected:
            raise SystemExit(f"[bench] listing is wrong: {hosts} hosts, groups {got}, expected {expected}")
    print(f"| instances | uncached (`--flush-cache`), {args.runs} runs | cached, {3 * args.runs} runs |")
    print("|---|---|---|")
    print(f"| {args.instances} | {summary(uncached)} | {summary(cached)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
