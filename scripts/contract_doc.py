#!/usr/bin/env python3
"""docs/contract.md from the contract's data (issue 29 item 1).

    python -m scripts.contract_doc            write docs/contract.md
    python -m scripts.contract_doc --check    exit 1 when docs/contract.md is not what the data gives

The document is the contract in the project's own words: the picture, the tiers
with their ports (numbers from group_vars/all/fleet.yml), the hosts of a cell and
the only flows allowed, all rendered from group_vars/all/contract.yml; nothing in
it is typed twice. tests/unit/test_contract_doc.py keeps it current.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from filter_plugins.fleet_contract import default_ports, load
from scripts.lab import fleet_hosts

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "contract.md"

PICTURE = """\
Client → Route53 → ELB → web1..web4 (nginx) → lb1, lb2 (HAProxy) → app1..app4 → PostgreSQL primary
                 ↘ CloudFront → S3 (static assets)                         ↘ replica1, replica2 (streaming)"""


def _ports(names: list[str], ports: Mapping[str, int]) -> str:
    return ", ".join(f"{name} ({ports[name]})" if name in ports else name for name in names) or "none"


def _cells_table(contract: Mapping, cells: int = 2) -> list[str]:
    keys = list(dict.fromkeys(t["cell"] for t in contract["tiers"].values() if "cell" in t))
    rows = ["| cell | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    hosts = [h for h in fleet_hosts(cells) if h.cell]
    for cell in sorted({h.cell for h in hosts}):
        members = {
            key: [h.name for h in hosts if h.cell == cell and h.name.rstrip("0123456789") == key] for key in keys
        }
        rows.append(f"| {cell} | " + " | ".join(", ".join(members[k]) for k in keys) + " |")
    rows.append("| c, d, … | " + " | ".join("same shape" if i == 0 else "" for i in range(len(keys))) + " |")
    return rows


def render(contract: Mapping, ports: Mapping[str, int]) -> str:
    tiers = contract["tiers"]
    lines = [
        "# The fleet's contract",
        "",
        "<!-- Generated from group_vars/all/contract.yml and the ports of group_vars/all/fleet.yml",
        "     by `python -m scripts.contract_doc`: edit the data, then run it. tests/unit/test_contract_doc.py",
        "     fails when this file is not what the data gives. -->",
        "",
        "The names, cells and flows every part of fleet shares: the inventories (lab and AWS), the",
        "roles, the AWS security groups, the host firewalls, pg_hba and the tests all read them from",
        "[group_vars/all/contract.yml](../group_vars/all/contract.yml); this page shows that file.",
        "",
        "```",
        PICTURE,
        "```",
        "",
        "## Tiers",
        "",
        "Each tier is an inventory group (the same in the lab and in AWS) and one role. A cell tier",
        "has its hosts in every cell; a fleet-wide tier has them once.",
        "",
        "| group | role | where | ports it serves | metrics ports |",
        "|---|---|---|---|---|",
    ]
    for name, tier in tiers.items():
        if "cell" in tier:
            where = f"{tier['per_cell']} per cell (`{tier['cell']}N`)"
        elif "exactly" in tier:
            where = f"exactly {tier['exactly']} in the fleet"
        else:
            where = "fleet-wide"
        served, metrics = _ports(tier["ports"], ports), _ports(tier["metrics"], ports)
        lines.append(f"| `{name}` | {tier['role']} | {where} | {served} | {metrics} |")
    unions = ", ".join(
        f"`{name}` = {' + '.join(f'`{m}`' for m in members)}" for name, members in contract["unions"].items()
    )
    lines += [
        "",
        f"Unions of tiers: {unions}. Every cell is also a group, `cell_<name>`.",
        "",
        "## Cells",
        "",
        *_cells_table(contract),
        "",
        "A new cell is inventory only. Every app server writes to the primary and reads from its",
        "cell's replica.",
        "",
        "## Flows — everything else is denied",
        "",
        "`cell`: only to the destination's own cell. `metrics`: the destination tier's metrics ports.",
        "",
        "| from | to | scope | ports | what |",
        "|---|---|---|---|---|",
    ]
    for flow in contract["flows"]:
        lines.append(
            f"| {flow['from']} | {flow['to']} | {flow.get('scope', 'any')} | {_ports(flow['ports'], ports)} "
            f"| {flow['what']} |"
        )
    lines += ["", "Parties outside the tiers:", ""]
    lines += [f"- **{name}**: {where}" for name, where in contract["parties"].items()]
    lines += [
        "",
        "## Adding a tier",
        "",
        "One role, one entry under `tiers:` in contract.yml, its rows under `flows:`, a",
        "`fleet_port_<name>` in group_vars/all/fleet.yml and a play in playbooks/site.yml; then",
        "`python -m scripts.contract_doc`. The host firewalls, pg_hba, the AWS security groups and",
        'the cell wiring follow from the data (README, "The contract as data").',
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.contract_doc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/contract.md is stale")
    args = parser.parse_args(argv)
    text = render(load(), default_ports())
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is not what the contract gives: run python -m scripts.contract_doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
