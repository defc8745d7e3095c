"""Extra vars typed as key=value arrive as strings: ``-e fleet_port_lb_frontend=8081``
is "8081". Every port of the contract and every other number of the roles must be
accepted that way, and a bad one still refused, naming the variable.

Each test is one run of every role's argument spec and preflight
(tests/fixtures/preflights.yml, ``--check --tags <role>_preflight``) on the
controller, with the top-level group_vars wiring the ports into the roles exactly as
in the fleet. The ports are read from group_vars/all/fleet.yml and the numbers from
the roles' argument specs: a new ``fleet_port_*`` or a new int option is covered
without editing this file.
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from scripts.deploy import read_release, release_file
from tests.conftest import ROOT, run

FLEET = yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text())
PORTS = {name: value for name, value in FLEET.items() if name.startswith("fleet_port_")}
# The release an inventory records (an inventory's own, not the top-level group_vars').
APP_VERSION = read_release(release_file(ROOT / "inventories" / "lab"))["app_release_version"]
ROLES = ("base", "postgresql", "app", "haproxy", "nginx")
TAGS = ",".join(f"{role}_preflight" for role in ROLES)
# One host of each kind: every role runs, on a host wired like the fleet's.
HOSTS = "web1,lb1,app1,primary,replica1,elb1"
# Numbers whose default is "derive it" (null): a value a small host accepts.
UNSET_BY_DEFAULT = {
    "postgresql_memory_mb": 1024,
    "postgresql_max_connections": 100,
    "postgresql_shared_buffers_mb": 256,
    "postgresql_effective_cache_size_mb": 512,
    "postgresql_work_mem_mb": 4,
    "postgresql_maintenance_work_mem_mb": 64,
}


def role_numbers() -> dict[str, int | float]:
    """Every int or float option of the roles' argument specs that group_vars leave to
    the role, with its default (or a value from UNSET_BY_DEFAULT)."""
    wired = set()
    for path in (ROOT / "group_vars").rglob("*.yml"):
        wired |= set(yaml.safe_load(path.read_text()) or {})
    numbers: dict[str, int | float] = {}
    for role in ROLES:
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        for name, spec in specs["argument_specs"]["main"]["options"].items():
            if spec.get("type") in ("int", "float") and name not in wired:
                numbers[name] = defaults[name] if defaults.get(name) is not None else UNSET_BY_DEFAULT[name]
    return numbers


@pytest.fixture(scope="module")
def preflight(tmp_path_factory):
    """``preflight(*key_values) -> (rc, output)``: the preflights with ``-e key=value`` each."""
    tmp = tmp_path_factory.mktemp("preflight")
    # The syntax inventory beside a link to the top-level group_vars: ansible-playbook
    # loads group_vars next to the inventory (the playbook is in tests/fixtures/).
    (tmp / "hosts.yml").write_text((ROOT / "tests" / "syntax-inventory.yml").read_text())
    (tmp / "group_vars").symlink_to(ROOT / "group_vars")
    artifact = tmp / f"fleet-app-{APP_VERSION}.tar.gz"
    artifact.write_bytes(b"")
    # What the inventories give the roles besides group_vars (as JSON: typed); no number.
    given = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "fleet_environment": "test",
        "base_admin_ssh_keys": [(ROOT / "tests" / "fixtures" / "admin_ed25519.pub").read_text().strip()],
        "app_release_version": APP_VERSION,
        "app_release_url": str(artifact),
        "haproxy_bind_address": "127.0.0.1",
        "postgresql_listen_address": "127.0.0.1",
        # The primary and the replica are both this controller, which may run a
        # PostgreSQL of its own (this machine's does): the split-brain guard would read
        # its one cluster as two primaries. A cluster name no controller has.
        "postgresql_cluster_name": "fleet_preflight_test",
        **{f"vault_postgresql_{user}_password": "x" * 16 for user in ("replication", "app_rw", "app_ro")},
    }
    (tmp / "given.json").write_text(json.dumps(given))

    def _run(*key_values: str) -> tuple[int, str]:
        cmd = ["ansible-playbook", "-i", str(tmp / "hosts.yml"), str(ROOT / "tests" / "fixtures" / "preflights.yml")]
        cmd += ["--check", "--tags", TAGS, "--limit", HOSTS, "-e", f"@{tmp / 'given.json'}"]
        for key_value in key_values:
            cmd += ["-e", key_value]
        # A fact cache of its own: the lab's (ansible.cfg) knows hosts by these names.
        proc = run(cmd, ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp / "facts"))
        return proc.returncode, proc.stdout + proc.stderr

    return _run


def test_the_contract_has_ports_and_the_roles_numbers():
    assert {"fleet_port_ssh", "fleet_port_http", "fleet_port_lb_frontend", "fleet_port_app"} <= set(PORTS)
    assert {"haproxy_maxconn", "nginx_worker_connections", "app_workers", "postgresql_version"} <= set(role_numbers())


def test_every_port_and_number_given_as_key_value_passes_every_preflight(preflight):
    # Typed as an operator types them: key=value, strings. Each port moved by one (the
    # LB frontend and stats ports stay apart); the other numbers at their defaults.
    ports = [f"{name}={value + 1}" for name, value in PORTS.items()]
    numbers = [f"{name}={value}" for name, value in role_numbers().items()]
    rc, output = preflight(*ports, *numbers)
    assert rc == 0, output[-6000:]
    for role in ROLES:
        assert f"{role} : preflight |" in output, f"no preflight of {role} ran:\n{output[-3000:]}"


def test_a_bad_port_given_as_key_value_is_still_refused_naming_the_role_variable(preflight):
    # Each on hosts that the others leave alone: 80a on the LB frontend (the LBs, and
    # the web servers that proxy to it), 0 for the app, 70000 for PostgreSQL.
    rc, output = preflight("fleet_port_lb_frontend=80a", "fleet_port_app=0", "fleet_port_postgres=70000")
    assert rc != 0, output[-3000:]
    for complaint in (
        "argument 'haproxy_frontend_port' is of type str and we were unable to convert to int",
        "argument 'nginx_upstream_port' is of type str and we were unable to convert to int",
        "Bad app variable: app_port: 0 is outside 1-65535; app_db_port: 70000 is outside 1-65535.",
        "Bad postgresql variable: postgresql_port: 70000 is outside 1-65535.",
    ):
        assert complaint in output, f"{complaint!r} not in:\n{output[-6000:]}"
