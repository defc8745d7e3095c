"""Cell wiring: who talks to whom, worked out from the inventory groups alone.

The contract (../shared/ARCHITECTURE.md) names the groups ``web``, ``lb``, ``app``,
``db``, ``db_primary`` (exactly one host), ``db_replicas`` and one group per cell,
``cell_a``, ``cell_b``, ... A host's cell is the one cell group it is in. Within a
cell, the web servers proxy to the cell's LB, the LB balances exactly the cell's app
servers, and the app servers read from the cell's replica; every app server writes
to the primary, which belongs to no cell. A new cell is therefore inventory only:
add its hosts to the tier groups and to a new ``cell_<letter>`` group.

Every function takes the ``groups`` mapping Ansible exposes (group name -> host
names); groups that are absent count as empty. Host variables are not needed: the
filters answer with inventory host names, and roles look up addresses and ports in
``hostvars`` themselves.

Host lists are sorted naturally (app9 before app10), cells by name (cell_a, cell_b).

Bad topologies raise ``AnsibleFilterError`` naming the host or cell and the problem.
Two kinds of checks run:

* Membership, on every call, over the whole inventory, because such an inventory is
  wrong whatever is asked of it: a host listed twice in a group; a host in more than
  one of ``web``, ``lb``, ``app``, ``db_primary``, ``db_replicas`` (a host in ``db``
  alone also counts as a role); a host in two cells; a web, LB, app or replica host
  in no cell; a cell member that is none of those (the primary included: it serves
  every cell); a cell with two LBs or two replicas.
* Completeness, only where it matters, so that a partial inventory (a role's
  molecule scenario, a cell being built) still answers what it can:
  ``web_upstream`` needs the web server's cell to have an LB, ``lb_backends`` needs
  app servers in the LB's cell, ``app_replica`` needs a replica in the app server's
  cell, ``db_primary`` needs exactly one host in ``db_primary``. ``cell_map`` checks
  every cell fully: one LB, at least one app server, one replica. A cell may have no
  web servers (not yet, or no longer, in service); its LB then gets no traffic.

Two LBs in one cell are an error, not a choice: each web server has exactly one
upstream, and picking one silently would leave the other LB idle. An LB pair for
failover is a separate design (a shared address) that the contract does not have.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ansible.errors import AnsibleFilterError

try:  # as a filter plugin Ansible loads this file alone, outside the package
    from filter_plugins.fleet_contract import CELL_GROUP, cell_tiers, load, role_groups
except ImportError:  # pragma: no cover - exercised by ansible-playbook
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from filter_plugins.fleet_contract import CELL_GROUP, cell_tiers, load, role_groups

WEB, LB, APP, DB, DB_PRIMARY, DB_REPLICAS = "web", "lb", "app", "db", "db_primary", "db_replicas"

_CONTRACT = load()
# A host is in at most one of these groups (the tiers of group_vars/all/contract.yml):
# that group is its role.
ROLE_GROUPS = role_groups(_CONTRACT)

# The roles that live in a cell, and the key each has in a cell's entry of cell_map.
CELL_TIERS = cell_tiers(_CONTRACT)

_DIGITS = re.compile(r"([0-9]+)")


def _natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key that puts app9 before app10; the name itself breaks ties (app01, app1)."""
    parts = _DIGITS.split(name)
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def _natural(names: Iterable[str]) -> list[str]:
    return sorted(names, key=_natural_key)


def _fail(problems: list[str]) -> AnsibleFilterError:
    return AnsibleFilterError("fleet cell wiring: " + "; ".join(problems))


@dataclass
class _Topology:
    """The validated membership of the inventory."""

    cells: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    cell_of: dict[str, str] = field(default_factory=dict)
    role_of: dict[str, str] = field(default_factory=dict)
    primary: list[str] = field(default_factory=list)


def _members(groups: Mapping, name: str, problems: list[str]) -> list[str]:
    """The hosts of group ``name`` (none when absent), noting duplicates and non-names."""
    value = groups.get(name)
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        problems.append(f"group {name} must be a list of host names, got {type(value).__name__}")
        return []
    hosts: list[str] = []
    for host in value:
        if not isinstance(host, str) or not host:
            problems.append(f"group {name} holds {host!r}, which is not a host name")
        elif host in hosts:
            problems.append(f"{host} is listed more than once in group {name}")
        else:
            hosts.append(host)
    return hosts


def _load(groups: object) -> _Topology:
    """Check membership over the whole inventory and index it; raise on any problem."""
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError(
            f"fleet cell wiring: expected the inventory groups (a mapping), got {type(groups).__name__}"
        )
    problems: list[str] = []
    topo = _Topology()

    # Roles: each host in at most one role group. A host in db alone has role db.
    roles: dict[str, list[str]] = {}
    for name in ROLE_GROUPS:
        for host in _members(groups, name, problems):
            roles.setdefault(host, []).append(name)
    for host in _members(groups, DB, problems):
        if not {DB_PRIMARY, DB_REPLICAS} & set(roles.get(host, [])):
            roles.setdefault(host, []).append(DB)
    for host in _natural(roles):
        if len(roles[host]) > 1:
            problems.append(f"{host} is in more than one role group ({', '.join(roles[host])}); a host has one role")
        topo.role_of[host] = roles[host][0]
    topo.primary = _natural(h for h, r in roles.items() if DB_PRIMARY in r)

    # Cells: each host in at most one; web, LB, app and replica hosts in exactly one.
    cell_names = sorted((g for g in groups if isinstance(g, str) and CELL_GROUP.match(g)), key=_natural_key)
    in_cells: dict[str, list[str]] = {}
    for cell in cell_names:
        for host in _members(groups, cell, problems):
            in_cells.setdefault(host, []).append(cell)
    for host in _natural(in_cells):
        cells, role = in_cells[host], topo.role_of.get(host)
        if len(cells) > 1:
            problems.append(f"{host} is in {len(cells)} cells ({', '.join(cells)}); a host belongs to one cell")
        elif role == DB_PRIMARY:
            problems.append(f"{host} is the primary and must not be in {cells[0]}: the primary serves every cell")
        elif role not in CELL_TIERS:
            problems.append(
                f"{host} is in {cells[0]} but in none of the groups {', '.join(CELL_TIERS)}; a cell holds only those"
            )
        else:
            topo.cell_of[host] = cells[0]
    known = ", ".join(cell_names) or "none defined"
    for host in _natural(topo.role_of):
        role = topo.role_of[host]
        if role in CELL_TIERS and host not in in_cells:
            problems.append(f"{host} is in group {role} but in no cell group (cells: {known})")

    # Each cell's hosts by tier; at most one LB and one replica per cell.
    for cell in cell_names:
        entry = {key: [] for key in CELL_TIERS.values()}
        for host in _natural(h for h, c in topo.cell_of.items() if c == cell):
            entry[CELL_TIERS[topo.role_of[host]]].append(host)
        for key, what, why in (
            ("lb", "LBs", "a cell has exactly one LB"),
            ("replica", "replicas", "a cell reads from exactly one replica"),
        ):
            if len(entry[key]) > 1:
                problems.append(f"{cell} has {len(entry[key])} {what} ({', '.join(entry[key])}); {why}")
        topo.cells[cell] = entry

    if problems:
        raise _fail(problems)
    return topo


def _host_in(topo: _Topology, host: object, role: str) -> str:
    """The cell of ``host``, which must be in group ``role``."""
    if not isinstance(host, str):
        raise AnsibleFilterError(f"fleet cell wiring: expected a host name, got {type(host).__name__}")
    actual = topo.role_of.get(host)
    if actual != role:
        where = f"it is in {actual}" if actual else "it is in none of the role groups"
        raise _fail([f"{host} is not in group {role} ({where})"])
    return topo.cell_of[host]


def cell_of(host: str, groups: Mapping) -> str:
    """The cell group (``cell_a``) ``host`` belongs to."""
    topo = _load(groups)
    if host not in topo.cell_of:
        role = topo.role_of.get(host)
        why = f"it is in {role}, which belongs to no cell" if role else "it is in no role group"
        raise _fail([f"{host} is in no cell ({why})"])
    return topo.cell_of[host]


def cell_map(groups: Mapping) -> dict[str, dict[str, list[str]]]:
    """Every cell with its hosts: ``{cell_a: {web: [...], lb: [lb1], app: [...], replica: [replica1]}}``.

    Checks every cell fully: one LB, at least one app server, one replica.
    """
    topo = _load(groups)
    problems: list[str] = []
    for cell, entry in topo.cells.items():
        web = f" ({', '.join(entry['web'])} would have nowhere to go)" if entry["web"] else ""
        if not entry["lb"]:
            problems.append(f"{cell} has no LB: no host of group {LB} is in {cell}{web}")
        if not entry["app"]:
            problems.append(f"{cell} has no app servers: no host of group {APP} is in {cell}{web}")
        if not entry["replica"]:
            apps = f" for {', '.join(entry['app'])} to read from" if entry["app"] else ""
            problems.append(f"{cell} has no replica{apps}: no host of group {DB_REPLICAS} is in {cell}")
    if problems:
        raise _fail(problems)
    return {cell: {key: list(hosts) for key, hosts in entry.items()} for cell, entry in topo.cells.items()}


def _cell_peers(host: str, groups: Mapping, tier: str, peer: str, peer_group: str, purpose: str) -> list[str]:
    """The ``peer`` hosts of the cell of ``host`` (which must be in ``tier``); fails when there are none."""
    topo = _load(groups)
    cell = _host_in(topo, host, tier)
    peers = topo.cells[cell][peer]
    if not peers:
        raise _fail([f"{host} in {cell} has no {purpose}: no host of group {peer_group} is in {cell}"])
    return list(peers)


def web_upstream(host: str, groups: Mapping) -> str:
    """The LB web server ``host`` proxies to: its cell's LB."""
    return _cell_peers(host, groups, WEB, "lb", LB, "LB to proxy to")[0]


def lb_backends(host: str, groups: Mapping) -> list[str]:
    """The app servers LB ``host`` balances: exactly its cell's app servers."""
    return _cell_peers(host, groups, LB, "app", APP, "app servers to balance")


def app_replica(host: str, groups: Mapping) -> str:
    """The replica app server ``host`` reads from: its cell's replica."""
    return _cell_peers(host, groups, APP, "replica", DB_REPLICAS, "replica to read from")[0]


def db_primary(groups: Mapping) -> str:
    """The primary: the single host of ``db_primary``, where every app server writes."""
    topo = _load(groups)
    if len(topo.primary) != 1:
        found = f" ({', '.join(topo.primary)})" if topo.primary else ""
        raise _fail([f"group {DB_PRIMARY} has {len(topo.primary)} hosts{found}; exactly one is required"])
    return topo.primary[0]


def server_list(hosts: Iterable[str], hostvars: Mapping, port: int) -> list[dict[str, object]]:
    """[{name, address, port}] for ``hosts``: what an LB or a proxy needs of its backends.

    The address is the host's ``ansible_host`` (its private IP in AWS and in the
    lab), or its name when the inventory gives none.
    """
    servers = []
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"fleet_server_list: {host} is not in the inventory")
        servers.append({"name": host, "address": hostvars[host].get("ansible_host", host), "port": port})
    return servers


def app_lb(host: str, groups: Mapping) -> str | None:
    """The LB that balances app server ``host``: its cell's LB (None when the cell has none yet)."""
    topo = _load(groups)
    cell = _host_in(topo, host, APP)
    lbs = topo.cells[cell]["lb"]
    return lbs[0] if lbs else None


def rollout(hosts: Iterable[str], groups: Mapping, per_cell: object, up: Mapping | None = None) -> dict[str, object]:
    """The order and batches of a rolling change of the app servers ``hosts``.

    Each batch takes ``per_cell`` servers from every cell that still has some, so
    every cell changes at the same pace and never more than ``per_cell`` of a cell's
    servers are out of its LB at once. ``up`` maps app servers to whether their LB
    reports them UP (servers it does not know are left out): a batch that would leave
    a cell's LB with no UP server outside it is refused, naming the cell and servers.
    A server of an earlier batch counts as UP (so a server a failed run left out of its
    LB, changed first, lets its peer follow): it is back in its LB when the next batch
    starts, or the rollout stopped at it.

    Returns ``{order: [host, ...], batches: [size, ...], cells: {cell: [host, ...]}}``:
    ``order`` for a group the rollout play runs on, ``batches`` for its ``serial``.
    """
    topo = _load(groups)
    if isinstance(per_cell, bool) or not isinstance(per_cell, int):
        try:
            per_cell = int(str(per_cell))
        except ValueError:
            raise _fail([f"app_rollout_per_cell must be a whole number, got {per_cell!r}"]) from None
    targets = _natural(hosts)
    problems: list[str] = []
    by_cell: dict[str, list[str]] = {}
    for host in targets:
        if topo.role_of.get(host) != APP:
            problems.append(f"{host} is not an app server; a rollout changes only group {APP}")
        else:
            by_cell.setdefault(topo.cell_of[host], []).append(host)
    if problems:
        raise _fail(problems)
    for cell in sorted(by_cell, key=_natural_key):
        size = len(topo.cells[cell]["app"])
        if not 1 <= per_cell <= size:
            problems.append(
                f"app_rollout_per_cell: a batch of {per_cell} per cell does not fit {cell}, "
                f"which has {size} app server(s): use 1-{size}"
            )
    if problems:
        raise _fail(problems)

    order: list[str] = []
    batches: list[int] = []
    # The servers of earlier batches are UP again when a batch starts: each one passed
    # its gate and went back into its LB, or the rollout stopped before this batch.
    done: set[str] = set()
    rounds = max((len(v) for v in by_cell.values()), default=0)
    for start in range(0, rounds, per_cell):
        batch: list[str] = []
        for cell in sorted(by_cell, key=_natural_key):
            chunk = by_cell[cell][start : start + per_cell]
            if up is not None and chunk:
                known = [h for h in topo.cells[cell]["app"] if h in up]
                if known and not [h for h in known if (up[h] or h in done) and h not in chunk]:
                    problems.append(
                        f"draining {', '.join(chunk)} would leave the LB of {cell} with no UP server "
                        f"(UP now: {', '.join(h for h in known if up[h]) or 'none'}); bring another "
                        f"server of {cell} UP first or deploy with a smaller app_rollout_per_cell"
                    )
            batch.extend(chunk)
        done.update(batch)
        if batch:
            order.extend(batch)
            batches.append(len(batch))
    if problems:
        raise _fail(problems)
    return {"order": order, "batches": batches, "cells": {c: list(h) for c, h in by_cell.items()}}


class FilterModule:
    """fleet's cell-wiring filters."""

    def filters(self):
        return {
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
