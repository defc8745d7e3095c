#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Work out fleet's AWS layout from its variables, refusing bad input before anything exists."""

from __future__ import annotations

import ipaddress
import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: fleet_aws_plan
short_description: Check fleet's AWS network variables and list the subnets and instances to create
description:
  - Pure computation on the controller; talks to no API and never reports a change.
  - Fails, naming the variable, when a CIDR does not parse, has host bits set, lies
    outside the VPC or overlaps another subnet; when a cell name is not a lowercase
    letter group or repeats; when an availability zone number is out of range.
  - Names instances the way the lab does (web1..webN across cells in cell order,
    lb1.., app1.., replica1.., primary) so both inventories yield the same host names.
options:
  vpc_cidr:
    description: The VPC's IPv4 CIDR.
    type: str
    required: true
  operator_cidr:
    description: The only IPv4 CIDR SSH is open to.
    type: str
    required: true
  cells:
    description: One entry per cell with C(name), C(az), C(private_cidr), C(public_cidr) and optional C(tiers).
    type: list
    elements: dict
    required: true
  cell_tiers:
    description: Default C(count) and C(instance_type) for the tiers C(web), C(lb), C(app), C(replica).
    type: dict
    required: true
  primary_instance_type:
    description: Instance type of the PostgreSQL primary.
    type: str
    required: true
  region:
    description:
      - The AWS region; must be one botocore knows in any partition.
    type: str
    required: true
  zones:
    description:
      - The region's availability zone names, sorted; C(az) numbers index this list.
      - Omitted, zone numbers are checked only for being whole numbers, so that the
        variables can be checked before any call to AWS.
    type: list
    elements: str
author:
  - fleet
"""

EXAMPLES = r"""
- name: Plan the network and the instances
  fleet_aws_plan:
    vpc_cidr: 10.40.0.0/16
    operator_cidr: 203.0.113.0/24
    cells:
      - {name: a, az: 1, private_cidr: 10.40.1.0/24, public_cidr: 10.40.101.0/24}
    cell_tiers:
      web: {count: 2, instance_type: t3.small}
      lb: {count: 1, instance_type: t3.small}
      app: {count: 2, instance_type: t3.medium}
      replica: {count: 1, instance_type: t3.medium}
    primary_instance_type: t3.medium
    region: us-east-1
    zones: [us-east-1a, us-east-1b]
  register: plan
"""

RETURN = r"""
subnets:
  description: Every subnet, private and public, with its cell, zone and tier.
  returned: always
  type: list
  elements: dict
  sample: [{name: fleet-a-private, cell: a, az: us-east-1a, cidr: 10.40.1.0/24, public: false}]
instances:
  description: Every instance with name, role, cell (empty for the primary), db_role, type, az and subnet CIDR.
  returned: always
  type: list
  elements: dict
"""

TIERS = ("web", "lb", "app", "replica")
ROLE = {"web": "web", "lb": "lb", "app": "app", "replica": "db"}
CELL_NAME = re.compile(r"^[a-z]+$")


def _net(value, what, problems):
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        problems.append(f"{what}: {value!r} is not an IPv4 network CIDR ({exc})")
        return None
    return net


def _known_regions():
    """Every region botocore's endpoint data names, in every partition; empty without botocore."""
    try:
        import botocore.session
    except ImportError:
        return set()
    session = botocore.session.get_session()
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def plan(params):
    """Return (subnets, instances, problems) for the module's parameters."""
    problems = []
    known = _known_regions()
    if known and params["region"] not in known:
        names = ", ".join(sorted(known))
        problems.append(f"aws_region: {params['region']!r} is not an AWS region (known to this botocore: {names})")
    vpc = _net(params["vpc_cidr"], "aws_vpc_cidr", problems)
    if vpc is not None and not 16 <= vpc.prefixlen <= 28:
        problems.append(f"aws_vpc_cidr: {vpc} must have a prefix between /16 and /28 (an AWS limit)")
    _net(params["operator_cidr"], "aws_operator_cidr", problems)
    zones = params["zones"]
    cells = params["cells"]
    if not cells:
        problems.append("aws_cells: at least one cell is required")

    subnets, seen_names = [], set()
    for index, cell in enumerate(cells):
        name = str(cell.get("name", ""))
        where = f"aws_cells[{index}]"
        if not CELL_NAME.match(name):
            problems.append(f"{where}.name: {name!r} is not a cell name (lowercase letters)")
        elif name in seen_names:
            problems.append(f"{where}.name: cell {name} is defined twice")
        seen_names.add(name)
        az = cell.get("az")
        zone = None
        if not isinstance(az, int) or isinstance(az, bool) or az < 1:
            problems.append(f"{where}.az: {az!r} must be a zone number from 1")
        elif zones is not None and az > len(zones):
            problems.append(f"{where}.az: {az} must be a zone number from 1 to {len(zones)} ({', '.join(zones)})")
        elif zones is not None:
            zone = zones[az - 1]
        for kind in ("private", "public"):
            net = _net(cell.get(f"{kind}_cidr"), f"{where}.{kind}_cidr", problems)
            if net is None:
                continue
            if vpc is not None and not net.subnet_of(vpc):
                problems.append(f"{where}.{kind}_cidr: {net} is not inside aws_vpc_cidr {vpc}")
            for other in subnets:
                if net.overlaps(ipaddress.IPv4Network(other["cidr"])):
                    problems.append(f"{where}.{kind}_cidr: {net} overlaps {other['name']} ({other['cidr']})")
            subnets.append(
                {"name": f"{name}-{kind}", "cell": name, "az": zone, "cidr": str(net), "public": kind == "public"}
            )

    instances, counters = [], dict.fromkeys(TIERS, 0)
    for index, cell in enumerate(cells):
        tiers = {tier: dict(params["cell_tiers"].get(tier) or {}) for tier in TIERS}
        for tier, override in (cell.get("tiers") or {}).items():
            if tier not in TIERS:
                problems.append(f"aws_cells[{index}].tiers: unknown tier {tier!r} (tiers: {', '.join(TIERS)})")
                continue
            tiers[tier].update(override or {})
        private = next((s for s in subnets if s["cell"] == cell.get("name") and not s["public"]), None)
        for tier in TIERS:
            count, itype = tiers[tier].get("count"), tiers[tier].get("instance_type")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                problems.append(f"{tier} count of cell {cell.get('name')}: {count!r} is not a whole number >= 0")
                continue
            if tier in ("lb", "replica") and count != 1:
                problems.append(f"{tier} count of cell {cell.get('name')}: a cell has exactly one {tier}")
            if not itype:
                problems.append(f"{tier} instance_type of cell {cell.get('name')} is missing")
            for _ in range(count):
                counters[tier] += 1
                instances.append(
                    {
                        "name": f"{tier}{counters[tier]}",
                        "role": ROLE[tier],
                        "cell": cell.get("name"),
                        "db_role": "replica" if tier == "replica" else "",
                        "instance_type": itype,
                        "az": private and private["az"],
                        "subnet_cidr": private and private["cidr"],
                    }
                )
    if cells and subnets:
        first = next((s for s in subnets if not s["public"]), None)
        instances.append(
            {
                "name": "primary",
                "role": "db",
                "cell": "",
                "db_role": "primary",
                "instance_type": params["primary_instance_type"],
                "az": first and first["az"],
                "subnet_cidr": first and first["cidr"],
            }
        )
    return subnets, instances, problems


def main():
    module = AnsibleModule(
        argument_spec={
            "vpc_cidr": {"type": "str", "required": True},
            "operator_cidr": {"type": "str", "required": True},
            "cells": {"type": "list", "elements": "dict", "required": True},
            "cell_tiers": {"type": "dict", "required": True},
            "primary_instance_type": {"type": "str", "required": True},
            "region": {"type": "str", "required": True},
            "zones": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    subnets, instances, problems = plan(module.params)
    if problems:
        module.fail_json(msg="fleet AWS variables are wrong: " + "; ".join(problems), problems=problems)
    module.exit_json(changed=False, subnets=subnets, instances=instances)


if __name__ == "__main__":
    main()
