"""The contract as data: group_vars/all/contract.yml, checked, and what each host admits.

``fleet_contract`` (group_vars/all/contract.yml) holds the tiers, the shape of a
cell and the flows of ../shared/ARCHITECTURE.md. Ansible reads it as a variable
and passes it to these filters; Python (scripts/lab.py, the cell-wiring filters,
the tests) reads the same file through :func:`load`.

* ``fleet_contract_check(contract, ports)`` checks the data itself: a flow naming
  an unknown tier, party or port, a cell-scoped flow between tiers that have no
  cell. It returns the contract, so it can sit in front of every other use.
* ``fleet_inbound(host, groups, hostvars, contract, ports, networks)`` lists what
  ``host`` admits: for every flow into its tier (or into ``all``, or into a union
  such as ``db`` it belongs to), the port and the source addresses: the
  ``ansible_host`` of each source host (only those of the host's cell for a
  cell-scoped flow) and the networks of the parties (``networks.operator``,
  ``networks.monitoring``, ``networks.elb``); the client party is anyone.
* ``fleet_flow_peers(host, groups, contract, source)`` names the hosts of tier
  ``source`` that a flow lets reach ``host`` (pg_hba admits exactly these).

Errors raise ``AnsibleFilterError`` naming the flow, tier, host or network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ansible.errors import AnsibleFilterError

CONTRACT_FILE = Path(__file__).resolve().parents[1] / "group_vars" / "all" / "contract.yml"
ALL = "all"
SCOPES = ("any", "cell")
METRICS = "metrics"
# A cell's name (a, b, c) and its inventory group (cell_a): fleet_cells, the AWS plan
# and the lab all take them from here.
CELL_NAME = re.compile(r"^[a-z]+$")
CELL_GROUP = re.compile(r"^cell_[a-z]+$")
_TIER_KEYS = {"role", "cell", "per_cell", "exactly", "ports", "metrics"}
_FLOW_KEYS = {"from", "to", "scope", "ports", "what"}


def _fail(problems: Iterable[str]) -> AnsibleFilterError:
    return AnsibleFilterError("fleet contract: " + "; ".join(problems))


def load(path: Path | str | None = None) -> dict:
    """The ``fleet_contract`` mapping of group_vars/all/contract.yml (or ``path``), checked."""
    import yaml

    data = yaml.safe_load(Path(path or CONTRACT_FILE).read_text())
    return check(data["fleet_contract"])


def default_ports(fleet_yml: Path | str | None = None) -> dict[str, int]:
    """fleet.yml's fleet_port_* by short name, as the flows name them (for Python readers)."""
    import yaml

    path = Path(fleet_yml or CONTRACT_FILE.with_name("fleet.yml"))
    data = yaml.safe_load(path.read_text())
    return {k.removeprefix("fleet_port_"): int(v) for k, v in data.items() if k.startswith("fleet_port_")}


def _port_number(name: str, value: object, problems: list[str]) -> int | None:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
        problems.append(f"port {name} (fleet_port_{name}) is {value!r}, not a port number 1-65535")
        return None
    return int(text)


def _port_names(where: str, owner: Mapping, key: str, problems: list[str], skip: str = "") -> set[str]:
    """The port names ``owner[key]`` lists (a tier's ports or metrics, a flow's ports), but ``skip``."""
    value = owner.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{where}: {key} must be a list of port names")
        return set()
    return {name for name in value if name != skip}


def _unknown_keys(where: str, entry: Mapping, known: set[str], problems: list[str]) -> None:
    unknown = set(entry) - known
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def check(contract: object, ports: Mapping | None = None) -> dict:
    """Check the contract's own consistency (and, given ``ports``, that every named port exists)."""
    if not isinstance(contract, Mapping):
        raise _fail([f"expected a mapping (fleet_contract), got {type(contract).__name__}"])
    problems: list[str] = []
    tiers = contract.get("tiers") or {}
    unions = contract.get("unions") or {}
    parties = contract.get("parties") or {}
    if not isinstance(tiers, Mapping) or not tiers:
        raise _fail(["tiers: at least one tier is required"])
    port_names: set[str] = set()
    for name, tier in tiers.items():
        if not isinstance(tier, Mapping):
            problems.append(f"tier {name}: expected a mapping, got {type(tier).__name__}")
            continue
        _unknown_keys(f"tier {name}", tier, _TIER_KEYS, problems)
        if not tier.get("role"):
            problems.append(f"tier {name}: no role configures it")
        if "cell" in tier and "exactly" in tier:
            problems.append(f"tier {name}: a cell tier has per_cell hosts, not exactly")
        for key in ("ports", "metrics"):
            port_names |= _port_names(f"tier {name}", tier, key, problems)
    for name, members in unions.items():
        for member in members or []:
            if member not in tiers:
                problems.append(f"union {name}: {member} is not a tier")
    known = set(tiers) | set(unions) | set(parties) | {ALL}
    for index, flow in enumerate(contract.get("flows") or []):
        where = f"flow {index + 1} ({flow.get('from')} -> {flow.get('to')})" if isinstance(flow, Mapping) else ""
        if not isinstance(flow, Mapping):
            problems.append(f"flow {index + 1}: expected a mapping")
            continue
        _unknown_keys(where, flow, _FLOW_KEYS, problems)
        for end in ("from", "to"):
            if flow.get(end) not in known:
                names = ", ".join(sorted(known))
                problems.append(f"{where}: {end} {flow.get(end)!r} is not a tier, union or party (known: {names})")
        scope = flow.get("scope", "any")
        if scope not in SCOPES:
            problems.append(f"{where}: scope {scope!r} is not one of {', '.join(SCOPES)}")
        elif scope == "cell":
            for end in ("from", "to"):
                if "cell" not in (tiers.get(flow.get(end)) or {}):
                    problems.append(f"{where}: a cell-scoped flow needs two cell tiers; {flow.get(end)} has no cell")
        if not flow.get("ports"):
            problems.append(f"{where}: no ports")
        port_names |= _port_names(where, flow, "ports", problems, skip=METRICS)
        if not flow.get("what"):
            problems.append(f"{where}: `what` (the flow table's words) is missing")
    if ports is not None:
        for name in sorted(port_names):
            if name not in ports:
                problems.append(f"port {name} is named but fleet_port_{name} is not defined")
            else:
                _port_number(name, ports[name], problems)
    if problems:
        raise _fail(problems)
    return dict(contract)


def role_groups(contract: Mapping) -> tuple[str, ...]:
    """The tier groups: a host is in at most one."""
    return tuple(contract["tiers"])


def cell_tiers(contract: Mapping) -> dict[str, str]:
    """Cell-scoped tier group -> its key in a cell (db_replicas -> replica)."""
    return {name: tier["cell"] for name, tier in contract["tiers"].items() if "cell" in tier}


def cell_shape(contract: Mapping) -> dict[str, int]:
    """A cell's key -> how many hosts of it a cell has (web -> 2)."""
    return {tier["cell"]: int(tier["per_cell"]) for tier in contract["tiers"].values() if "cell" in tier}


def _tier_of(host: str, groups: Mapping, contract: Mapping) -> str | None:
    found = [name for name in contract["tiers"] if host in (groups.get(name) or [])]
    if len(found) > 1:
        raise _fail([f"{host} is in more than one tier ({', '.join(found)}); a host has one"])
    return found[0] if found else None


def _cells(groups: Mapping) -> dict[str, str]:
    """Host -> its cell group, from one pass over the cell groups (a call reads it per peer)."""
    index: dict[str, str] = {}
    for group in groups:
        if isinstance(group, str) and CELL_GROUP.match(group):
            for host in groups[group] or []:
                index.setdefault(host, group)
    return index


def _members(name: str, groups: Mapping, contract: Mapping) -> list[str]:
    """The hosts of a tier or union."""
    names = (contract.get("unions") or {}).get(name, [name])
    hosts: list[str] = []
    for tier in names:
        hosts += [h for h in groups.get(tier) or [] if h not in hosts]
    return hosts


def _targets(tier: str | None, contract: Mapping) -> set[str]:
    """Every name a flow may use for a host of ``tier``: the tier, its unions, all."""
    names = {ALL}
    if tier:
        names.add(tier)
        names.update(u for u, members in (contract.get("unions") or {}).items() if tier in members)
    return names


def flow_peers(host: str, groups: Mapping, contract: Mapping, source: str) -> list[str]:
    """The hosts of tier (or union) ``source`` that some flow lets reach ``host``."""
    tier = _tier_of(host, groups, contract)
    cells = _cells(groups)
    peers: list[str] = []
    for flow in contract["flows"]:
        if flow["from"] != source or flow["to"] not in _targets(tier, contract):
            continue
        for peer in _members(source, groups, contract):
            if peer == host or peer in peers:
                continue
            if flow.get("scope", "any") == "cell" and cells.get(peer) != cells.get(host):
                continue
            peers.append(peer)
    return peers


def _address(host: str, hostvars: Mapping, problems: list[str]) -> str | None:
    value = (hostvars.get(host) or {}).get("ansible_host", host)
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        problems.append(f"{host}: ansible_host {value!r} is not an IP address; the firewall admits addresses")
        return None
    return str(ipaddress.ip_network(addr))


def _networks(party: str, networks: Mapping, problems: list[str]) -> list[str]:
    value = networks.get(party) or []
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(str(item), strict=True)))
        except ValueError as exc:
            problems.append(f"networks.{party}: {item!r} is not a network CIDR ({exc})")
    return out


def inbound(
    host: str, groups: Mapping, hostvars: Mapping, contract: Mapping, ports: Mapping, networks: Mapping
) -> list[dict[str, object]]:
    """What ``host`` admits: [{what, from, port, sources: [CIDR, ...], any: bool}], one per flow and port.

    A flow with no source (no monitoring hosts and no monitoring networks) admits
    nothing and is left out; ``any`` is true for the client party (0.0.0.0/0).
    """
    contract = check(contract, ports)
    problems: list[str] = []
    tier = _tier_of(host, groups, contract)
    targets = _targets(tier, contract)
    cells = _cells(groups)
    if not _networks("operator", networks, problems) and not problems:
        problems.append("networks.operator (fleet_operator_networks) is empty: SSH would be closed to everyone")
    rules: list[dict[str, object]] = []
    for flow in contract["flows"]:
        if flow["to"] not in targets:
            continue
        source = flow["from"]
        anyone = source == "client"
        sources: list[str] = []
        if not anyone:
            peers = _members(source, groups, contract)
            if source == "operator":
                peers = list(groups.get("drift_control") or [])
            if flow.get("scope", "any") == "cell":
                peers = [p for p in peers if cells.get(p) == cells.get(host)]
            for peer in peers:
                if peer != host:
                    addr = _address(peer, hostvars, problems)
                    if addr and addr not in sources:
                        sources.append(addr)
            for net in _networks(source, networks, problems):
                if net not in sources:
                    sources.append(net)
            if not sources:
                continue
        names = flow["ports"]
        if names == [METRICS] or METRICS in names:
            names = [p for p in names if p != METRICS] + list((contract["tiers"].get(tier) or {}).get("metrics", []))
        for name in names:
            rules.append(
                {
                    "what": flow["what"],
                    "from": source,
                    "port": int(str(ports[name])),
                    "port_name": name,
                    "sources": sources,
                    "any": anyone,
                }
            )
    if problems:
        raise _fail(f"{host}: {p}" for p in problems)
    return rules


_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


def _cidr(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def firewall_problems(
    rules: object, ssh_port: object, open_allowed: object = False, table: object = "fleet"
) -> list[str]:
    """What is wrong with the firewall role's rules (an empty list when nothing is)."""
    problems: list[str] = []
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        problems.append(f"firewall_table: {table!r} is not an nftables table name")
    ssh = _port_number("ssh", ssh_port, problems)
    if not isinstance(rules, list):
        return [*problems, f"firewall_inbound: expected a list of rules, got {type(rules).__name__}"]
    ssh_sources: list[str] = []
    for index, rule in enumerate(rules):
        where = f"firewall_inbound[{index}]"
        if not isinstance(rule, Mapping):
            problems.append(f"{where}: expected a mapping, got {type(rule).__name__}")
            continue
        port = _port_number(str(rule.get("port_name", where)), rule.get("port"), problems)
        anyone = rule.get("any", False)
        if not isinstance(anyone, bool):
            problems.append(f"{where}.any: expected true or false, got {anyone!r}")
        sources = rule.get("sources", [])
        if not isinstance(sources, list) or (not sources and not anyone):
            problems.append(f"{where}.sources: expected a non-empty list of CIDRs (or any: true)")
            sources = []
        for source in sources:
            if _cidr(source) is None:
                problems.append(f"{where}.sources: {source!r} is not a network CIDR")
        if port is not None and port == ssh:
            ssh_sources += ["0.0.0.0/0"] if anyone is True else [str(s) for s in sources]
    if ssh is not None and not ssh_sources:
        problems.append(f"no rule admits SSH (port {ssh}): every operator would be locked out")
    wide = [s for s in ssh_sources if (_cidr(s) is not None and _cidr(s).prefixlen == 0)]
    if wide and open_allowed is not True:
        problems.append(
            f"SSH (port {ssh}) is admitted from {', '.join(sorted(set(wide)))}, which is everyone: refused here"
            " (firewall_ssh_open_allowed is false, as in production); name the operator networks"
        )
    return problems


def firewall_lockout(rules: list, ssh_port: object, client: object) -> str:
    """Why applying ``rules`` would cut off a run coming from ``client`` on SSH ('' when it would not)."""
    try:
        addr = ipaddress.ip_address(str(client).strip())
    except ValueError:
        return ""  # not over SSH (a container connection): nothing to lock out
    port = int(str(ssh_port))
    admitting = [r for r in rules if int(str(r["port"])) == port]
    for rule in admitting:
        if rule.get("any") or any(addr in ipaddress.ip_network(str(s)) for s in rule.get("sources", [])):
            return ""
    sources = sorted({str(s) for r in admitting for s in r.get("sources", [])})
    return (
        f"this run connects from {addr}, which the new rules would not admit on SSH (port {port}; admitted: "
        f"{', '.join(sources) or 'nothing'}): add it to fleet_operator_networks, or run from there"
    )


# ---- AWS: the contract as fleet_aws_plan's tiers and as security groups ---------
#
# In AWS every cell tier of every cell has a security group of its own
# (<prefix>-<cell>-<key>: fleet-production-a-web, -a-lb, -a-app, -a-replica), so
# that a cell-scoped flow admits exactly its cell's hosts. The fleet-wide tiers
# AWS runs have one group each: the primary (<prefix>-primary) and the ALB
# (<prefix>-alb, the contract's elb). The bastion (<prefix>-bastion) is where the
# operators come from; it also stands in for the monitoring hosts, which AWS
# does not run yet (as fleet_monitoring_networks defaults to the operators').

AWS_FLEET_WIDE = {"db_primary": "primary", "elb": "alb"}
AWS_BASTION = "bastion"
AWS_STAND_INS = {"operator": AWS_BASTION, "monitoring": AWS_BASTION}
AWS_ANYWHERE = "0.0.0.0/0"
# What a host reaches on the internet besides the flows: its package mirror
# (apt over http and https, through the NAT gateway; the bastion through the
# internet gateway).
AWS_INTERNET_PORTS = ("http", "https")
# The characters AWS allows in a security group rule's description.
_AWS_DESC = re.compile(r"[^A-Za-z0-9 ._:/()#,@\[\]+=&;{}!$*-]")


def aws_tiers(contract: Mapping) -> list[dict[str, object]]:
    """The contract's cell tiers as fleet_aws_plan's ``tiers`` parameter takes them.

    [{group, key, per_cell, role, db_role}]: ``key`` is the tier's key in a cell
    (its host names' prefix), ``role`` the instances' Role tag (the union the tier
    belongs to, db, or the tier itself), ``db_role`` their DbRole tag (the key,
    for a member of a union; empty otherwise). inventories/aws groups on both.
    """
    contract = check(contract)
    unions = contract.get("unions") or {}
    out: list[dict[str, object]] = []
    for group, tier in contract["tiers"].items():
        if "cell" not in tier:
            continue
        union = next((name for name, members in unions.items() if group in (members or [])), "")
        out.append(
            {
                "group": group,
                "key": tier["cell"],
                "per_cell": int(tier["per_cell"]),
                "role": union or group,
                "db_role": tier["cell"] if union else "",
            }
        )
    return out


def _aws_cell_names(cells: object, problems: list[str]) -> list[str]:
    if not isinstance(cells, list | tuple) or not cells:
        problems.append("aws_cells: at least one cell is required")
        return []
    names: list[str] = []
    for index, cell in enumerate(cells):
        name = cell.get("name") if isinstance(cell, Mapping) else cell
        if not isinstance(name, str) or not CELL_NAME.match(name):
            problems.append(f"aws_cells[{index}].name: {name!r} is not a cell name (lowercase letters)")
        elif name in names:
            problems.append(f"aws_cells[{index}].name: cell {name} is defined twice")
        else:
            names.append(name)
    return names


def aws_operator_problems(cidrs: object, environment: object = "") -> list[str]:
    """What is wrong with the operators' CIDRs (aws_operator_cidrs), the only source of SSH to the bastion."""
    if isinstance(cidrs, str):
        cidrs = [cidrs] if cidrs else []
    if not isinstance(cidrs, list | tuple) or not cidrs:
        return [
            "aws_operator_cidrs is empty (set aws_operator_cidr, or the list): SSH to the bastion, the only way"
            " into the fleet, would be open to no one"
        ]
    problems: list[str] = []
    for cidr in cidrs:
        try:
            net = ipaddress.IPv4Network(str(cidr), strict=True)
        except ValueError as exc:
            problems.append(f"aws_operator_cidrs: {cidr!r} is not an IPv4 network CIDR ({exc})")
            continue
        if net.prefixlen == 0 and environment == "production":
            problems.append(
                f"aws_operator_cidrs: {net} would open SSH to the bastion to the whole internet; refused in"
                " production (fleet_environment=production): name the operators' networks"
            )
    return problems


def _aws_desc(text: str) -> str:
    return _AWS_DESC.sub("", str(text)).strip()[:255]


def aws_security_groups(
    contract: Mapping,
    ports: Mapping,
    cells: object,
    prefix: str,
    operator_cidrs: object,
    https: bool = False,
) -> list[dict[str, object]]:
    """The security groups of fleet's AWS side, from the contract's flows.

    One group per cell tier per cell, one per fleet-wide tier AWS runs (the
    primary, the ALB) and one for the bastion: [{key, name, tier, cell,
    description, tags, rules, rules_egress}], the rules in amazon.aws.ec2_security_group's
    form, ``tags`` the group's Name, Tier and Cell. For every flow, each destination group admits the flow's ports from
    each source group (only the destination's cell for a cell-scoped flow), and
    each source group may send exactly that (egress). The client party is
    0.0.0.0/0; the operators and the monitoring hosts are the bastion group,
    which admits SSH only from ``operator_cidrs``. A flow into a party outside
    the VPC (the backup repository) is egress to 0.0.0.0/0 on its ports. The ALB
    admits only the ports it listens on: its tier's, and https when ``https``
    (a certificate is set). Every host and the bastion also reach http and https
    anywhere, for their package mirror; nothing else leaves the VPC.
    """
    contract = check(contract, ports)
    problems = aws_operator_problems(operator_cidrs)
    names = _aws_cell_names(cells, problems)
    if not isinstance(prefix, str) or not prefix:
        problems.append(f"prefix: {prefix!r} is not a name prefix")
    if problems:
        raise _fail(problems)
    operator_cidrs = [operator_cidrs] if isinstance(operator_cidrs, str) else list(operator_cidrs)
    tiers = contract["tiers"]
    unions = contract.get("unions") or {}

    groups: dict[str, dict] = {}

    def add(key: str, tier: str | None, cell: str | None, description: str) -> None:
        groups[key] = {
            "key": key,
            "name": f"{prefix}-{key}",
            "tier": tier or key,
            "cell": cell or "",
            "description": description,
            "tags": {"Name": f"{prefix}-{key}", "Tier": tier or key, **({"Cell": cell} if cell else {})},
            "rules": {},
            "rules_egress": {},
        }

    for cell in names:
        for tier, spec in tiers.items():
            if "cell" in spec:
                add(f"{cell}-{spec['cell']}", tier, cell, f"fleet {tier} hosts of cell {cell}")
    for tier, key in AWS_FLEET_WIDE.items():
        if tier in tiers:
            description = "fleet ALB: HTTP and HTTPS from clients" if key == "alb" else f"fleet {tier} host"
            add(key, tier, None, description)
    add(AWS_BASTION, None, None, "fleet bastion: SSH from the operators")
    hosts = [k for k, g in groups.items() if g["tier"] in tiers and k != AWS_FLEET_WIDE.get("elb")]

    def members(name: str) -> list[str]:
        if name == ALL:
            return list(hosts)
        wanted = unions.get(name, [name])
        return [k for k, g in groups.items() if g["tier"] in wanted and g["tier"] in tiers]

    def number(name: str) -> int:
        return int(str(ports[name]))

    def rule(port: int, target: tuple[str, str], what: str) -> dict[str, object]:
        kind, value = target
        out: dict[str, object] = {"proto": "tcp", "ports": [port]}
        out["group_name" if kind == "group" else "cidr_ip"] = groups[value]["name"] if kind == "group" else value
        out["rule_desc"] = _aws_desc(what)
        return out

    def put(rules: dict, port: int, target: tuple[str, str], what: str) -> None:
        """One rule per port and peer; two flows with the same ones share it, and its description."""
        found = rules.get((port, target))
        if found is None:
            rules[(port, target)] = rule(port, target, what)
        elif _aws_desc(what) not in str(found["rule_desc"]).split("; "):
            found["rule_desc"] = _aws_desc(f"{found['rule_desc']}; {what}")

    def admit(dest: str, port: int, source: tuple[str, str], what: str) -> None:
        put(groups[dest]["rules"], port, source, what)
        if source[0] == "group":
            put(groups[source[1]]["rules_egress"], port, ("group", dest), what)

    def send_anywhere(key: str, port: int, what: str) -> None:
        put(groups[key]["rules_egress"], port, ("cidr", AWS_ANYWHERE), what)

    listening = {*tiers.get("elb", {}).get("ports", []), *(["https"] if https else [])}
    for flow in contract["flows"]:
        source, target, scope = flow["from"], flow["to"], flow.get("scope", "any")
        if source == "client":
            sources = [("cidr", AWS_ANYWHERE)]
        else:
            found = members(source) if source in tiers or source in unions or source == ALL else []
            if not found and source in AWS_STAND_INS:
                found = [AWS_STAND_INS[source]]
            sources = [("group", k) for k in found]
        if target in tiers or target in unions or target == ALL:
            for dest in members(target):
                spec = tiers[groups[dest]["tier"]]
                port_names = [p for p in flow["ports"] if p != METRICS]
                if METRICS in flow["ports"]:
                    port_names += list(spec.get("metrics", []))
                if dest == AWS_FLEET_WIDE.get("elb"):
                    port_names = [p for p in port_names if p in listening]
                for src in sources:
                    if scope == "cell" and src[0] == "group" and groups[src[1]]["cell"] != groups[dest]["cell"]:
                        continue
                    for name in port_names:
                        admit(dest, number(name), src, flow["what"])
        else:  # a party outside the VPC (the backup repository): reached over the internet
            for kind, key in sources:
                for name in flow["ports"] if kind == "group" else []:
                    send_anywhere(key, number(name), flow["what"])
    for cidr in operator_cidrs:
        net = str(ipaddress.IPv4Network(str(cidr)))
        admit(AWS_BASTION, number("ssh"), ("cidr", net), "SSH from the operators to the bastion")
    for key in [*hosts, AWS_BASTION]:
        what = "package mirror" if key == AWS_BASTION else "package mirror through the NAT gateway"
        for name in AWS_INTERNET_PORTS:
            send_anywhere(key, number(name), what)

    def ordered(rules: dict) -> list[dict]:
        return [rules[k] for k in sorted(rules, key=lambda k: (k[0], k[1][0], k[1][1]))]

    return [{**g, "rules": ordered(g["rules"]), "rules_egress": ordered(g["rules_egress"])} for g in groups.values()]


def _aws_have(perms: object, names: Mapping) -> set[tuple]:
    """(protocol, from, to, kind, peer, description) of ec2_security_group_info's permissions."""
    out: set[tuple] = set()
    for perm in perms or []:
        head = (str(perm.get("ip_protocol")), perm.get("from_port"), perm.get("to_port"))
        for pair in perm.get("user_id_group_pairs") or []:
            peer = names.get(pair.get("group_id"), pair.get("group_id"))
            out.add((*head, "group", peer, pair.get("description") or ""))
        for kind, items, key in (
            ("cidr", "ip_ranges", "cidr_ip"),
            ("cidr6", "ipv6_ranges", "cidr_ipv6"),
            ("prefix", "prefix_list_ids", "prefix_list_id"),
        ):
            for item in perm.get(items) or []:
                out.add((*head, kind, item.get(key), item.get("description") or ""))
    return out


def _aws_want(rules: list) -> set[tuple]:
    out: set[tuple] = set()
    for rule in rules:
        kind, peer = ("group", rule["group_name"]) if "group_name" in rule else ("cidr", rule["cidr_ip"])
        for port in rule["ports"]:
            out.add((str(rule["proto"]), int(port), int(port), kind, peer, rule.get("rule_desc") or ""))
    return out


def aws_security_groups_out_of_shape(planned: list, found: list, tags: Mapping | None = None) -> list[str]:
    """The names of the planned groups (fleet_aws_security_groups) that ``found`` lacks or has otherwise.

    ``found`` is ec2_security_group_info's ``security_groups`` in the VPC; a group
    is in shape when its ingress and egress are exactly the planned rules (peers,
    ports and descriptions) and its tags exactly ``tags`` plus its own. Only the
    others need ec2_security_group: a converged fleet costs one describe call.
    """
    names = {g.get("group_id"): g.get("group_name") for g in found or []}
    by_name = {g.get("group_name"): g for g in found or []}
    out = []
    for group in planned:
        have = by_name.get(group["name"])
        if (
            have is None
            or _aws_have(have.get("ip_permissions"), names) != _aws_want(group["rules"])
            or _aws_have(have.get("ip_permissions_egress"), names) != _aws_want(group["rules_egress"])
            or dict(have.get("tags") or {}) != {**dict(tags or {}), **group["tags"]}
        ):
            out.append(group["name"])
    return out


class FilterModule:
    """fleet's contract filters."""

    def filters(self):
        return {
            "fleet_contract_check": check,
            "fleet_inbound": inbound,
            "fleet_flow_peers": flow_peers,
            "fleet_firewall_problems": firewall_problems,
            "fleet_firewall_lockout": firewall_lockout,
            "fleet_aws_tiers": aws_tiers,
            "fleet_aws_security_groups": aws_security_groups,
            "fleet_aws_operator_problems": aws_operator_problems,
            "fleet_aws_security_groups_out_of_shape": aws_security_groups_out_of_shape,
        }
