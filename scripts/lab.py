#!/usr/bin/env python3
"""The local lab: the whole fleet of ../shared/topology.txt as systemd containers.

    lab.py up [--cells N]    create the hosts, converge them with playbooks/site.yml, smoke-test
    lab.py down              remove every container, network and volume the lab made
    lab.py status            the lab's hosts, their state, and the ELB stand-in's answer
    lab.py ssh HOST [CMD]    SSH into a host the way Ansible does

Every host runs sshd; Ansible reaches it over SSH with a key the lab generates,
so the lab exercises the same connection path as production. Containers carry
labels (fleet.role, fleet.cell, fleet.db_role) that inventories/lab turns into
the same groups the AWS inventory produces.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filter_plugins.fleet_contract import load as load_contract
from scripts.deploy import read_release, release_file
from scripts.engine import engine_env
from scripts.recap import parse_recap

ROOT = Path(__file__).resolve().parents[1]
LAB_DIR = Path(os.environ.get("FLEET_LAB_DIR", ROOT / ".cache" / "lab"))
# ansible.cfg's fact cache: a host the lab (re)creates must not inherit the facts
# (addresses above all) of the container that had its name before.
FACT_CACHE = Path(os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION", "~/.cache/fleet/facts")).expanduser()
IMAGE = os.environ.get("FLEET_LAB_IMAGE", "fleet/debian12-lab:latest")
NETWORK = "fleet-lab"
LABEL = "fleet.lab=1"
# The ELB stand-in's HTTP port, published on 127.0.0.1 only.
ELB_PORT = int(os.environ.get("FLEET_LAB_ELB_PORT", "8088"))
ADMIN_USER = "fleet"
# A new host boots as a Debian 12 AMI does: the image's login user, whose sudo is
# cloud-init's drop-in. Its first converge (site.yml, with the host named in
# fleet_lab_first_converge: inventories/lab makes it log in as that user) creates
# the operator account; every later one logs in as the operator.
BOOTSTRAP_USER = "admin"
CLOUD_INIT_SUDOERS = "/etc/sudoers.d/90-cloud-init-users"
# systemd as PID 1 without --privileged (see ../shared/notes/testbed.md): the flags
# of testbed/systemd-flags.txt, which the container tests (through this name) and
# every molecule scenario (molecule/shared/create.yml) use too.
SYSTEMD_FLAGS = [
    line.strip()
    for line in (ROOT / "testbed" / "systemd-flags.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    cell: str = ""
    db_role: str = ""

    @property
    def labels(self) -> dict[str, str]:
        labels = {"fleet.lab": "1", "fleet.host": self.name, "fleet.role": self.role}
        if self.cell:
            labels["fleet.cell"] = self.cell
        if self.db_role:
            labels["fleet.db_role"] = self.db_role
        return labels


def fleet_hosts(cells: int) -> list[Host]:
    """The hosts of ../shared/topology.txt for `cells` cells (a, b, c, ...), in the shape of a
    cell that group_vars/all/contract.yml gives (web1, web2, lb1, app1, app2, replica1 in cell a)."""
    if not 1 <= cells <= 26:
        raise SystemExit("--cells must be between 1 and 26")
    contract = load_contract()
    db_tiers = contract["unions"]["db"]
    hosts = [Host("primary", "db", db_role="primary")]
    counters: dict[str, int] = {}
    for cell in string.ascii_lowercase[:cells]:
        for group, tier in contract["tiers"].items():
            if "cell" not in tier:
                continue
            key = tier["cell"]
            for _ in range(int(tier["per_cell"])):
                counters[key] = counters.get(key, 0) + 1
                # Labels the lab inventory groups by: a replica is role db, db_role replica.
                role, db_role = ("db", key) if group in db_tiers else (group, "")
                hosts.append(Host(f"{key}{counters[key]}", role, cell, db_role=db_role))
    hosts.append(Host("elb", "elb"))
    return hosts


# ---- small helpers -----------------------------------------------------------
class Phase:
    """Prints what a phase does and how long it took."""

    def __init__(self, title: str):
        self.title = title

    def __enter__(self):
        self.t0 = time.monotonic()
        print(f"[lab] {self.title} ...", flush=True)
        return self

    def __exit__(self, exc_type, exc, tb):
        took = time.monotonic() - self.t0
        status = "done" if exc_type is None else "FAILED"
        print(f"[lab] {self.title}: {status} in {took:.1f} s", flush=True)
        return False


def sh(*cmd: str, check: bool = True, capture: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=capture, text=True, **kw)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("docker", *args, check=check)


def lab_containers(all_states: bool = True) -> list[dict]:
    args = ["ps", "--filter", f"label={LABEL}", "--format", "{{json .}}"]
    if all_states:
        args.insert(1, "-a")
    out = docker(*args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def container_ip(name: str) -> str:
    fmt = '{{(index .NetworkSettings.Networks "' + NETWORK + '").IPAddress}}'
    return docker("inspect", "-f", fmt, name).stdout.strip()


def ansible_env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), FLEET_LAB_DIR=str(LAB_DIR))


# ---- up ----------------------------------------------------------------------
def ensure_key() -> Path:
    # The lab's key, secrets and logs are the operator's alone.
    LAB_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    LAB_DIR.chmod(0o700)
    key = LAB_DIR / "id_ed25519"
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-lab", "-f", str(key))
    return key


def forget_facts(names: list[str]) -> None:
    # The jsonfile cache names a file <prefix><host>; ansible-core 2.19 uses the prefix "s1_".
    for name in names:
        for cached in FACT_CACHE.glob(f"*{name}"):
            if cached.name == name or cached.name.endswith(f"_{name}"):
                cached.unlink(missing_ok=True)


def ensure_network() -> None:
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker("network", "create", "--label", LABEL, NETWORK)


def create_host(host: Host, pubkey: str) -> bool:
    """Create and bootstrap one host; False when it already existed."""
    existing = docker("inspect", "-f", "{{json .Config.Labels}}", host.name, check=False)
    if existing.returncode == 0:
        labels = json.loads(existing.stdout) or {}
        if labels.get("fleet.lab") != "1":
            raise SystemExit(f"a container named {host.name} exists and is not the lab's; remove it or rename it")
        docker("start", host.name)
        return False
    # NET_ADMIN: each host runs its own nftables firewall (role firewall), as an EC2 instance does.
    args = ["run", "-d", "--name", host.name, "--hostname", host.name, "--network", NETWORK, *SYSTEMD_FLAGS]
    args.append("--cap-add=NET_ADMIN")
    for key, value in host.labels.items():
        args += ["--label", f"{key}={value}"]
    if host.role == "elb":
        args += ["--publish", f"127.0.0.1:{ELB_PORT}:80"]
    docker(*args, IMAGE)
    return True


def bootstrap_host(host: Host, pubkey: str) -> None:
    """What cloud-init does on a Debian 12 AMI: the login user admin with the key pair's
    key, and its sudo rule in cloud-init's own drop-in (not the operator account: the
    first converge makes that). The ELB stand-in, which base never converges (in AWS
    it is the ALB, no host of fleet's), gets the operator account here instead."""
    user = ADMIN_USER if host.role == "elb" else BOOTSTRAP_USER
    sudoers = "/etc/sudoers.d/fleet-admin" if host.role == "elb" else CLOUD_INIT_SUDOERS
    script = f"""
set -e
id {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
printf '%s\\n' '{pubkey}' > /home/{user}/.ssh/authorized_keys
chown {user}:{user} /home/{user}/.ssh/authorized_keys
chmod 0600 /home/{user}/.ssh/authorized_keys
printf '# Created by cloud-init\\n\\n# User rules for {user}\\n{user} ALL=(ALL) NOPASSWD:ALL\\n' > {sudoers}
chmod 0440 {sudoers}
"""
    docker("exec", host.name, "sh", "-c", script)


def wait_for_ssh(hosts: list[Host], key: Path, user: str = ADMIN_USER, timeout: float = 90) -> None:
    pending = {h.name: container_ip(h.name) for h in hosts}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, ip in list(pending.items()):
            probe = sh(*ssh_command(ip, key, user), "true", check=False)
            if probe.returncode == 0:
                del pending[name]
        if pending:
            time.sleep(1)
    if pending:
        raise SystemExit(f"sshd did not answer on: {', '.join(sorted(pending))}")


def ssh_command(ip: str, key: Path, user: str = ADMIN_USER) -> list[str]:
    return [
        "ssh",
        "-i",
        str(key),
        "-o",
        f"UserKnownHostsFile={LAB_DIR / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        f"{user}@{ip}",
    ]


FATAL = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\]", re.M)
TASK = re.compile(r"^TASK \[(?P<task>.+?)\] \*+", re.M)


def converge(extra: list[str], engine: str = "ansible", playbook: str = "site.yml") -> dict[str, dict[str, int]]:
    """Run playbooks/site.yml (or ``playbook``) over the lab; on failure say which host and task, and how to retry."""
    log = LAB_DIR / f"converge-{Path(playbook).stem}.log" if playbook != "site.yml" else LAB_DIR / "converge.log"
    cmd = ["ansible-playbook", "-i", str(ROOT / "inventories" / "lab"), str(ROOT / "playbooks" / playbook), *extra]
    env = dict(ansible_env(), **engine_env(engine))
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        log.chmod(0o600)  # an older log may have been made with the umask's mode
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        assert proc.stdout is not None
        text = []
        for line in proc.stdout:
            out.write(line)
            out.flush()
            text.append(line)
            if line.startswith(("PLAY [", "TASK [", "fatal:", "failed:")) or "unreachable" in line.lower():
                print("      " + line.rstrip()[:150], flush=True)
        rc = proc.wait()
    output = "".join(text)
    recap = parse_recap(output)
    if rc != 0:
        print(f"[lab] converge failed (exit {rc}); full log: {log}")
        for m in FATAL.finditer(output):
            tasks = list(TASK.finditer(output, 0, m.start()))
            task = tasks[-1]["task"] if tasks else "?"
            print(f"[lab]   host {m['host']}: task '{task}'")
        print("[lab] retry: bin/fleet lab up   (safe on a running lab), or just the failed hosts:")
        print(f"[lab]        .venv/bin/ansible-playbook -i inventories/lab playbooks/{playbook} --limit <host>")
        raise SystemExit(1)
    return recap


def http(method: str, url: str, body: dict | None = None, timeout: float = 5) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read().decode(), err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def cell_groups(hosts: list[Host]) -> list[str]:
    """The cell groups the lab inventory makes of these hosts (fleet.cell "a" -> cell_a), which
    is also what the app answers as its cell."""
    return sorted({f"cell_{h.cell}" for h in hosts if h.cell})


def answered_cells(answers: list[tuple[int, dict | str]]) -> set[str]:
    """The cells of the healthy /healthz answers (200, status "ok": both databases; a JSON body naming a cell)."""
    return {
        body["cell"]
        for status, body in answers
        if status == 200 and isinstance(body, dict) and body.get("status") == "ok" and body.get("cell")
    }


def missing_cells(expected: list[str], answers: list[tuple[int, dict | str]]) -> list[str]:
    """The expected cells that no healthy /healthz answer came from, sorted."""
    return sorted(set(expected) - answered_cells(answers))


def smoke(url: str, cells: list[str], attempts: int = 30) -> None:
    """Client -> ELB stand-in -> nginx -> HAProxy -> app -> PostgreSQL: every cell in `cells` answers."""
    for _ in range(attempts):
        status, body = http("GET", f"{url}/healthz")
        if status == 200:
            break
        time.sleep(1)
    else:
        raise SystemExit(f"smoke: {url}/healthz answered {status}: {body}")
    # The ELB stand-in spreads requests over every web server: 8 per cell is plenty.
    answers: list[tuple[int, dict | str]] = []
    for _ in range(max(16, 8 * len(cells))):
        answers.append(http("GET", f"{url}/healthz"))
        if not missing_cells(cells, answers):
            break
    missing = missing_cells(cells, answers)
    if missing:
        answered = ", ".join(sorted(answered_cells(answers))) or "no cell"
        raise SystemExit(
            f"smoke: cell(s) {', '.join(missing)} did not answer: {len(answers)} requests to {url}/healthz"
            f" were answered by {answered} (failed answers: {sum(status != 200 for status, _ in answers)})"
        )
    status, item = http("POST", f"{url}/items", {"name": f"smoke-{int(time.time())}"})
    if status not in (200, 201):
        raise SystemExit(f"smoke: writing an item answered {status}: {item}")
    print(f"[lab] smoke: healthz 200 from cells {cells}; wrote item {item}")


def cmd_up(args: argparse.Namespace) -> None:
    hosts = fleet_hosts(args.cells)
    key = ensure_key()
    pubkey = (key.with_suffix(".pub")).read_text().strip()
    with Phase(f"create {len(hosts)} hosts ({args.cells} cells + the ELB stand-in) on network {NETWORK}"):
        ensure_network()
        created = [h for h in hosts if create_host(h, pubkey)]
        forget_facts([h.name for h in created])
        print(f"[lab]   new: {', '.join(h.name for h in created) or 'none (all existed)'}")
    with Phase(f"boot the new hosts as a Debian AMI does (user {BOOTSTRAP_USER}, sudo from cloud-init); wait for sshd"):
        for h in created:
            bootstrap_host(h, pubkey)
        fresh = [h for h in created if h.role != "elb"]
        wait_for_ssh(fresh, key, BOOTSTRAP_USER)
        wait_for_ssh([h for h in hosts if h not in fresh], key)
    if args.no_converge:
        return
    # The release the lab inventory records (group_vars/app/release.yml), which the converge runs.
    version = read_release(release_file(ROOT / "inventories" / "lab"))["app_release_version"]
    with Phase(f"build app release {version} on the controller (hosts never reach PyPI)"):
        build = [str(ROOT / "scripts" / "build-release.sh"), "--version", version]
        sh(*build, capture=False, stdout=subprocess.DEVNULL)
    # The new hosts log in as the AMI's user for this converge, the others as the operator.
    first = ["-e", json.dumps({"fleet_lab_first_converge": [h.name for h in fresh]})] if fresh else []
    what = f" ({len(fresh)} new hosts log in as {BOOTSTRAP_USER}: their first converge)" if fresh else ""
    with Phase(f"converge with playbooks/site.yml (engine {args.engine}){what}"):
        recap = converge([*first, *args.ansible_args], args.engine)
    if fresh:
        # As the operator now: base removes cloud-init's rule, the first converge's own.
        with Phase(f"the operator takes over the new hosts: base_admin as {ADMIN_USER}"):
            converge(["--tags", "base_admin", "--limit", ",".join(h.name for h in fresh)], args.engine, "base.yml")
    changed = sum(stats["changed"] for stats in recap.values())
    print(f"[lab] converge: {len(recap)} hosts, changed={changed}")
    with Phase("smoke check through the ELB stand-in"):
        smoke(f"http://127.0.0.1:{ELB_PORT}", cell_groups(hosts))
    print(f"[lab] the fleet is up: try  curl http://127.0.0.1:{ELB_PORT}/healthz")


def cmd_down(_: argparse.Namespace) -> None:
    with Phase("remove the lab's containers, network and volumes"):
        names = [c["Names"] for c in lab_containers()]
        if names:
            docker("rm", "-f", "-v", *names)
            forget_facts(names)
        if docker("network", "inspect", NETWORK, check=False).returncode == 0:
            docker("network", "rm", NETWORK)
        volumes = docker("volume", "ls", "-q", "--filter", f"label={LABEL}").stdout.split()
        if volumes:
            docker("volume", "rm", *volumes)
        (LAB_DIR / "known_hosts").unlink(missing_ok=True)
        print(f"[lab]   removed {len(names)} containers")


def cmd_status(_: argparse.Namespace) -> None:
    containers = lab_containers()
    if not containers:
        print("[lab] no lab containers (bin/fleet lab up)")
        return
    for c in sorted(containers, key=lambda c: c["Names"]):
        labels = dict(kv.split("=", 1) for kv in c["Labels"].split(",") if "=" in kv)
        role, cell = labels.get("fleet.role", ""), labels.get("fleet.cell", "-")
        print(f"{c['Names']:<10} {role:<4} cell={cell:<2} {c['Status']}")
    status, body = http("GET", f"http://127.0.0.1:{ELB_PORT}/healthz") if containers else (0, "")
    print(f"[lab] ELB stand-in http://127.0.0.1:{ELB_PORT}/healthz -> {status} {body}")


def cmd_ssh(args: argparse.Namespace) -> None:
    key = LAB_DIR / "id_ed25519"
    ip = container_ip(args.host)
    os.execvp("ssh", [*ssh_command(ip, key), *args.command])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bin/fleet lab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="create and converge the lab, then smoke-test it")
    up.add_argument("--cells", type=int, default=2, help="number of cells (default 2)")
    up.add_argument("--no-converge", action="store_true", help="only create the hosts (as fresh AMIs)")
    up.add_argument(
        "--engine",
        choices=["mitogen", "ansible"],
        default=os.environ.get("FLEET_ENGINE", "mitogen"),
        help="mitogen (default, faster) or ansible (the stock strategy); $FLEET_ENGINE sets the default",
    )
    up.add_argument("ansible_args", nargs=argparse.REMAINDER, help="passed to ansible-playbook after --")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("status", help="show the lab's hosts")
    ssh = sub.add_parser("ssh", help="SSH into a lab host")
    ssh.add_argument("host")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if getattr(args, "ansible_args", None) and args.ansible_args[0] == "--":
        args.ansible_args = args.ansible_args[1:]
    {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh": cmd_ssh}[args.cmd](args)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as err:
        sys.exit(f"[lab] command failed: {' '.join(err.cmd)}\n{err.stderr or ''}")
