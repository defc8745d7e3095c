"""Host firewalls on the running lab: every host reaches exactly the flows of the contract
(group_vars/all/contract.yml, which tests/unit/test_contract.py proves equal to
ARCHITECTURE.md), the operator keeps SSH, a broken or locking-out rule set changes
nothing, and pg_hba refuses on its own what the firewall would."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from filter_plugins.fleet_contract import default_ports, load
from scripts.engine import engine_env
from scripts.lab import LAB_DIR, ssh_command
from tests.conftest import ROOT, ansible_env
from tests.lab.conftest import BESIDE_A_RUN, FLOOR_BESIDE_A_RUN, Load, lab_exec, lab_secrets

pytestmark = pytest.mark.lab

CONTRACT = load()
PORTS = default_ports()
# Every port any tier serves or a flow names: what the matrix probes on every host.
PROBED = sorted(
    {PORTS[p] for t in CONTRACT["tiers"].values() for p in t["ports"] + t["metrics"]}
    | {PORTS[p] for f in CONTRACT["flows"] for p in f["ports"] if p != "metrics"}
)
# Connects to every (address, port) given on stdin, in parallel, each bounded by
# a 1 s timeout: "open", "refused" (a reset: admitted, nothing listens) or "dropped".
PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(target):
    s = socket.socket(); s.settimeout(1.0)
    try:
        s.connect((target[0], target[1])); return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "dropped"
    finally:
        s.close()
targets = json.load(sys.stdin)
with ThreadPoolExecutor(64) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


def tier_of(host: str, groups: dict) -> str | None:
    return next((t for t in CONTRACT["tiers"] if host in groups.get(t, [])), None)


def cell_of(host: str, groups: dict) -> str | None:
    return next((g for g in groups if g.startswith("cell_") and host in groups[g]), None)


def allowed(groups: dict) -> set[tuple[str, str, int]]:
    """(source host, destination host, port) the contract allows between the lab's hosts,
    worked out here from the flow rows, not by the code under test."""
    hosts = sorted({h for t in CONTRACT["tiers"] for h in groups.get(t, [])})
    unions = CONTRACT["unions"]

    def members(name: str) -> list[str]:
        if name == "all":
            return hosts
        if name == "client":
            return hosts  # anyone, the lab's hosts included
        return [h for t in unions.get(name, [name]) for h in groups.get(t, [])]

    out = set()
    for flow in CONTRACT["flows"]:
        for src in members(flow["from"]):
            for dst in members(flow["to"]):
                if src == dst or (flow.get("scope") == "cell" and cell_of(src, groups) != cell_of(dst, groups)):
                    continue
                names = flow["ports"]
                if "metrics" in names:
                    names = [p for p in names if p != "metrics"] + CONTRACT["tiers"][tier_of(dst, groups)]["metrics"]
                out |= {(src, dst, PORTS[p]) for p in names}
    return out


def probe_from(src: str, targets: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """(address, port) -> open, refused or dropped, each connected to from inside ``src``."""
    proc = subprocess.run(
        ["docker", "exec", "-i", src, "python3", "-c", PROBE],
        input=json.dumps(targets),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(zip(targets, json.loads(proc.stdout), strict=True))


def matrix(groups: dict, hostvars: dict) -> dict[tuple[str, str, int], str]:
    hosts = sorted({h for t in CONTRACT["tiers"] for h in groups.get(t, [])})

    def from_host(src: str) -> dict[tuple[str, str, int], str]:
        pairs = [(dst, port) for dst in hosts if dst != src for port in PROBED]
        found = probe_from(src, [(hostvars[dst]["ansible_host"], port) for dst, port in pairs])
        return {(src, dst, port): found[(hostvars[dst]["ansible_host"], port)] for dst, port in pairs}

    results: dict[tuple[str, str, int], str] = {}
    with ThreadPoolExecutor(4) as pool:
        for part in pool.map(from_host, hosts):
            results |= part
    return results


# First in the module: the matrix after it proves the rules this applies.
def test_the_firewall_applied_to_a_converged_lab_under_load_fails_no_request(groups, hostvars):
    """Every host's table lifted (a converged fleet before its firewalls, as it stood before
    the role), then playbooks/firewall.yml on the whole lab while clients use it through
    the ELB stand-in: no request fails, and every host has its table back."""
    hosts = sorted(set().union(*groups.values()))
    for host in hosts:
        lab_exec(host, "nft delete table inet fleet")
    # Lifted indeed: a flow the contract forbids connects (web1 to the primary's PostgreSQL).
    forbidden = (hostvars["primary"]["ansible_host"], PORTS["postgres"])
    assert probe_from("web1", [forbidden]) == {forbidden: "open"}
    with Load(**BESIDE_A_RUN) as load:
        time.sleep(2)
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(ROOT / "inventories" / "lab"), str(ROOT / "playbooks" / "firewall.yml")],
            cwd=ROOT,
            env=ansible_env(**engine_env("mitogen")),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        time.sleep(2)
    print(f"firewall applied to {len(hosts)} hosts under load: {load.summary()}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert load.failed() == [], f"{len(load.failed())} failed: {load.failed()[:5]}"
    assert len(load.results) > FLOOR_BESIDE_A_RUN
    assert [host for host in hosts if "table inet fleet" not in lab_exec(host, "nft list tables")] == []
    assert probe_from("web1", [forbidden]) == {forbidden: "dropped"}


def test_every_host_reaches_exactly_the_contracts_flows(groups, hostvars):
    results = matrix(groups, hostvars)
    ok = allowed(groups)
    forbidden_open = sorted(k for k, r in results.items() if k not in ok and r == "open")
    allowed_dropped = sorted(k for k, r in results.items() if k in ok and r == "dropped")
    # A flow of the contract to a service that runs there connects.
    serving = {k for k in ok if k[2] != PORTS["https"]}
    not_open = sorted(k for k in serving if results.get(k) != "open")
    counts = {r: sum(1 for k, v in results.items() if v == r and k not in ok) for r in ("dropped", "refused")}
    print(
        f"\nreachability at {len(groups.get('db_replicas', []))} cells: {len(results)} probes, "
        f"{len(ok)} allowed ({sum(results[k] == 'open' for k in ok)} open), "
        f"{len(results) - len(ok)} forbidden ({counts['dropped']} dropped, {counts['refused']} refused, "
        f"{len(forbidden_open)} open)"
    )
    assert forbidden_open == [], f"{len(forbidden_open)} forbidden flows connect: {forbidden_open[:20]}"
    assert allowed_dropped == [], f"contract flows dropped: {allowed_dropped[:20]}"
    assert not_open == [], f"contract flows that do not connect: {not_open[:20]}"


def test_the_operator_keeps_ssh_to_every_host_on_a_new_connection(groups, hostvars):
    hosts = sorted({h for t in CONTRACT["tiers"] for h in groups.get(t, [])})
    key = LAB_DIR / "id_ed25519"

    def login(host: str) -> int:
        cmd = ssh_command(hostvars[host]["ansible_host"], key)
        return subprocess.run(
            [cmd[0], "-o", "ControlPath=none", *cmd[1:], "true"], capture_output=True, timeout=30
        ).returncode

    with ThreadPoolExecutor(4) as pool:
        codes = dict(zip(hosts, pool.map(login, hosts), strict=True))
    assert {h: c for h, c in codes.items() if c} == {}


def test_the_first_converge_ran_as_the_ami_user_and_left_the_operator_in_charge(groups, hostvars):
    """Lab hosts boot as a Debian 12 AMI does (scripts/lab.py): user admin, its sudo from
    cloud-init's drop-in. The first converge logged in as admin (sshd says so) and made the
    operator; the converge as the operator then removed cloud-init's rule: admin still logs
    in with its key, but only the operator has sudo. (The ELB stand-in is the ALB in AWS,
    no host base converges: the lab makes its operator account itself.)"""
    hosts = sorted({h for t in CONTRACT["tiers"] if t != "elb" for h in groups.get(t, [])})
    key = LAB_DIR / "id_ed25519"

    def sudo_as(host: str, user: str) -> int:
        cmd = ssh_command(hostvars[host]["ansible_host"], key, user)
        return subprocess.run([*cmd, "sudo", "-n", "true"], capture_output=True, timeout=30).returncode

    def state(host: str) -> dict[str, object]:
        logins = lab_exec(host, "journalctl -u ssh.service --no-pager -o cat | grep -o 'Accepted publickey for [a-z]*'")
        return {
            "first login as admin": "Accepted publickey for admin" in logins,
            "sudo rules": sorted(lab_exec(host, "ls /etc/sudoers.d").split()),
            "operator sudo": sudo_as(host, "fleet"),
            "admin sudo": sudo_as(host, "admin") != 0,
        }

    with ThreadPoolExecutor(4) as pool:
        found = dict(zip(hosts, pool.map(state, hosts), strict=True))
    want = {"first login as admin": True, "sudo rules": ["README", "fleet-admin"], "operator sudo": 0}
    want["admin sudo"] = True  # refused: the operator's converge removed 90-cloud-init-users
    assert {h: v for h, v in found.items() if v != want} == {}


def firewall_play(host: str, extra: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(ROOT / "inventories" / "lab"),
            str(ROOT / "playbooks" / "firewall.yml"),
            "--limit",
            host,
            "-e",
            json.dumps(extra),
        ],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def rules_and_file(host: str) -> tuple[str, str]:
    return lab_exec(host, "nft list table inet fleet"), lab_exec(host, "sha256sum /etc/nftables.conf")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # The operator networks do not hold the address this run comes from.
        ({"fleet_operator_networks": ["192.0.2.0/24"]}, "which the new rules would not admit on SSH"),
        ({"fleet_operator_networks": []}, "SSH would be closed to everyone"),
        # A rule nft refuses: the file is checked before it replaces the old one.
        ({"firewall_extra_input_rules": ["tcp dport 9 acept"]}, "failed to validate"),
    ],
    ids=["locks-out-this-run", "no-operator-network", "broken-rule"],
)
def test_a_bad_rule_set_changes_nothing(extra, message):
    before = rules_and_file("web2")
    proc = firewall_play("web2", extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert message in out, out[-3000:]
    assert rules_and_file("web2") == before


def test_pg_hba_refuses_another_cells_app_server_without_the_firewall(hostvars):
    """With the firewall lifted for app3 -> replica1, PostgreSQL itself refuses app3;
    app1 (cell a) still reads from replica1."""
    replica = hostvars["replica1"]["ansible_host"]
    password = lab_secrets()["vault app_ro"]
    connect = (
        '/opt/fleet-app/current/venv/bin/python -c "import psycopg,sys\n'
        f"try:\n psycopg.connect(host='{replica}', dbname='app', user='app_ro', password=sys.argv[1],"
        " connect_timeout=3).close(); print('connected')\n"
        'except psycopg.OperationalError as e: print(e)" "$1"'
    )
    lift = f"nft insert rule inet fleet input ip saddr {hostvars['app3']['ansible_host']} tcp dport 5432 accept"
    lab_exec("replica1", lift)
    try:
        refused = lab_exec("app3", connect, args=(password,))
        admitted = lab_exec("app1", connect, args=(password,))
    finally:
        handles = lab_exec("replica1", "nft -a list chain inet fleet input")
        for line in handles.splitlines():
            if f"ip saddr {hostvars['app3']['ansible_host']} tcp dport 5432 accept" in line:
                lab_exec("replica1", f"nft delete rule inet fleet input handle {line.rsplit('handle', 1)[1].strip()}")
    assert "no pg_hba.conf entry" in refused, refused
    assert admitted.strip() == "connected", admitted
