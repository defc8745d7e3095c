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
    letter group or repeats; when an availability zone number is out of range; when
    the operators' CIDR list is empty, or admits everyone in production.
  - Names instances the way the lab does (web1..webN across cells in cell order,
    lb1.., app1.., replica1.., primary) so both inventories yield the same host names.
    The tiers of a cell come from the contract (group_vars/all/contract.yml), through
    the C(fleet_aws_tiers) filter; only the instance types are AWS settings.
options:
  vpc_cidr:
    description: The VPC's IPv4 CIDR.
    type: str
    required: true
  operator_cidrs:
    description:
      - The IPv4 CIDRs SSH to the bastion is open to (aws_operator_cidrs); at least one.
      - C(0.0.0.0/0) is refused when O(environment) is C(production).
    type: list
    elements: str
    required: true
  environment:
    description: fleet_environment, which decides whether an operator CIDR may be everyone.
    type: str
    required: true
  tiers:
    description:
      - The contract's cell tiers, in order, each with C(group) (the inventory group),
        C(key) (its key in a cell and host name prefix), C(per_cell) (default count),
        C(role) (the Role tag) and C(db_role) (the DbRole tag, or empty).
    type: list
    elements: dict
    required: true
  cells:
    description: One entry per cell with C(name), C(az), C(private_cidr), C(public_cidr) and optional C(tiers).
    type: list
    elements: dict
    required: true
  cell_tiers:
    description:
      - Per tier key (C(web), C(lb), C(app), C(replica)) its C(instance_type) and,
        optionally, a C(count) other than the contract's C(per_cell).
    type: dict
    required: true
  primary_instance_type:
    description: Instance type of the PostgreSQL primary.
    type: str
    required: true
  bastion_instance_type:
    description: Instance type of the bastion (in the first cell's public subnet).
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
    operator_cidrs: [203.0.113.0/24]
    environment: production
    tiers: "{{ fleet_contract | fleet_aws_tiers }}"
    cells:
      - {name: a, az: 1, private_cidr: 10.40.1.0/24, public_cidr: 10.40.101.0/24}
    cell_tiers:
      web: {instance_type: t3.small}
      lb: {instance_type: t3.small}
      app: {instance_type: t3.medium}
      replica: {instance_type: t3.medium}
    primary_instance_type: t3.medium
    bastion_instance_type: t3.micro
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
  sample: [{name: a-private, cell: a, az: us-east-1a, cidr: 10.40.1.0/24, public: false}]
instances:
  description:
    - Every instance with name, role, cell (empty for the primary and the bastion), db_role, type,
      az, subnet CIDR, public (the bastion only) and security_group (the key of its group:
      C(a-web), C(primary), C(bastion)).
  returned: always
  type: list
  elements: dict
"""

CELL_NAME = re.compile(r"^[a-z]+$")
# The cell wiring (filter_plugins/fleet_cells.py) refuses a cell with two LBs or
# two replicas: each web server has one upstream, each app server one replica.
ONE_PER_CELL = ("lb", "replica")
_TIER_KEYS = ("group", "key", "per_cell", "role", "db_role")


def _net(value, what, problems):
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        problems.append(f"{what}: {value!r} is not an IPv4 network CIDR ({exc})")
        return None
    return net


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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


def _operators(params, problems):
    cidrs = params["operator_cidrs"] or []
    if not cidrs:
        problems.append(
            "aws_operator_cidrs is empty (set aws_operator_cidr, or the list): SSH to the bastion, the only way"
            " into the fleet, would be open to no one"
        )
    for cidr in cidrs:
        net = _net(cidr, "aws_operator_cidrs", problems)
        if net is not None and net.prefixlen == 0 and params["environment"] == "production":
            problems.append(
                f"aws_operator_cidrs: {net} would open SSH to the bastion to the whole internet; refused in"
                " production (fleet_environment=production): name the operators' networks"
            )


def _tiers(params, problems):
    """The contract's cell tiers, checked, by key."""
    tiers = {}
    for index, tier in enumerate(params["tiers"] or []):
        where = f"tiers[{index}] (the contract's cell tiers)"
        missing = [k for k in _TIER_KEYS if k not in tier]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        key = str(tier["key"])
        if not CELL_NAME.match(key):
            problems.append(f"{where}: key {key!r} is not a host name prefix (lowercase letters)")
        elif key in tiers:
            problems.append(f"{where}: key {key} is used twice")
        elif not _whole(tier["per_cell"]):
            problems.append(f"{where}: per_cell {tier['per_cell']!r} is not a whole number >= 0")
        else:
            tiers[key] = dict(tier)
    if not tiers and not problems:
        problems.append("tiers: the contract has no cell tiers")
    return tiers


def _instance(name, role, cell, db_role, instance_type, subnet, security_group):
    """One instance of the plan, in the subnet given (public or private as that subnet is)."""
    return {
        "name": name,
        "role": role,
        "cell": cell,
        "db_role": db_role or "",
        "instance_type": instance_type,
        "az": subnet and subnet["az"],
        "subnet_cidr": subnet and subnet["cidr"],
        "public": bool(subnet and subnet["public"]),
        "security_group": security_group,
    }


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
    _operators(params, problems)
    tiers = _tiers(params, problems)
    known_keys = ", ".join(tiers)
    defaults = {}
    for key, value in (params["cell_tiers"] or {}).items():
        if key not in tiers:
            problems.append(f"aws_cell_tiers: unknown tier {key!r} (the contract's cell tiers: {known_keys})")
        elif not isinstance(value, dict):
            problems.append(f"aws_cell_tiers.{key}: expected a mapping with instance_type (and count)")
        else:
            defaults[key] = value
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

    instances, counters = [], dict.fromkeys(tiers, 0)
    for index, cell in enumerate(cells):
        shape = {key: {"count": tier["per_cell"], **defaults.get(key, {})} for key, tier in tiers.items()}
        for key, override in (cell.get("tiers") or {}).items():
            if key not in tiers:
                problems.append(f"aws_cells[{index}].tiers: unknown tier {key!r} (the contract's tiers: {known_keys})")
                continue
            shape[key].update(override or {})
        private = next((s for s in subnets if s["cell"] == cell.get("name") and not s["public"]), None)
        for key, tier in tiers.items():
            count, itype = shape[key].get("count"), shape[key].get("instance_type")
            if not _whole(count):
                problems.append(f"{key} count of cell {cell.get('name')}: {count!r} is not a whole number >= 0")
                continue
            if key in ONE_PER_CELL and count != 1:
                problems.append(f"{key} count of cell {cell.get('name')}: a cell has exactly one {key}")
            if not itype:
                problems.append(f"{key} instance_type of cell {cell.get('name')} is missing (aws_cell_tiers.{key})")
            for _ in range(count):
                counters[key] += 1
                name = f"{key}{counters[key]}"
                sg = f"{cell.get('name')}-{key}"
                instances.append(_instance(name, tier["role"], cell.get("name"), tier["db_role"], itype, private, sg))
    if cells and subnets:
        first = next((s for s in subnets if not s["public"]), None)
        instances.append(_instance("primary", "db", "", "primary", params["primary_instance_type"], first, "primary"))
        # The one way in: SSH from the operators' CIDRs only, a public address
        # from its subnet. Not a fleet tier: no Cell, no playbook targets it.
        public = next((s for s in subnets if s["public"]), None)
        instances.append(_instance("bastion", "bastion", "", "", params["bastion_instance_type"], public, "bastion"))
    return subnets, instances, problems


def main():
    module = AnsibleModule(
        argument_spec={
            "vpc_cidr": {"type": "str", "required": True},
            "operator_cidrs": {"type": "list", "elements": "str", "required": True},
            "environment": {"type": "str", "required": True},
            "tiers": {"type": "list", "elements": "dict", "required": True},
            "cells": {"type": "list", "elements": "dict", "required": True},
            "cell_tiers": {"type": "dict", "required": True},
            "primary_instance_type": {"type": "str", "required": True},
            "bastion_instance_type": {"type": "str", "required": True},
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
