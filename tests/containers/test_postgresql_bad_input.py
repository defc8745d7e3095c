"""Bad input for role postgresql fails in preflight, before any change, and says why.

One throwaway container plays the database host under test; the other hosts of
each inventory are names only (the run is limited to the container), which is
all the topology checks need.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, run
from tests.containers.conftest import Container, PlaybookResult, start_container

pytestmark = pytest.mark.containers

SECRETS = {
    "vault_postgresql_replication_password": "bad-input-test",
    "vault_postgresql_app_rw_password": "bad-input-test-rw",
    "vault_postgresql_app_ro_password": "bad-input-test-ro",
}
PLAYBOOK = """---
- name: Converge the PostgreSQL tier
  hosts: db
  any_errors_fatal: true
  roles:
    - role: postgresql
"""


@pytest.fixture(scope="module")
def db_host(tmp_path_factory) -> Iterator[Container]:
    name = f"fleet-test-pg-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp(name)
    container = start_container(name, ("db",), tmp)
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def untouched(host: Container) -> str:
    """What any converge of the role changes first: packages, config and data directories."""
    return host.sh(
        "dpkg -l 'postgresql*' 'python3-psycopg2' 2>&1 | grep ^ii; ls -d /etc/postgresql /var/lib/postgresql"
    ).stdout


@pytest.fixture(scope="module")
def fingerprint_before(db_host) -> str:
    return untouched(db_host)


def converge(host: Container, groups: dict[str, list[str]], extra_vars: dict, host_vars: dict | None = None, *args):
    """Run the role with ``host`` placed in ``groups`` (other names are never contacted)."""
    tmp = host.tmp / uuid.uuid4().hex
    tmp.mkdir()
    # Ansible reads group_vars next to the inventory: the fleet's own, as in every inventory.
    (tmp / "group_vars").symlink_to(ROOT / "group_vars")
    hosts: dict[str, dict] = {}
    for members in groups.values():
        for member in members:
            hosts[member] = {}
    hosts[host.name] = {
        "ansible_connection": "community.docker.docker",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    for member, variables in (host_vars or {}).items():
        hosts[member].update(variables)
    inventory = {
        "all": {
            "hosts": hosts,
            "children": {group: {"hosts": {m: {} for m in members}} for group, members in groups.items()},
        }
    }
    (tmp / "inventory.json").write_text(json.dumps(inventory))
    (tmp / "playbook.yml").write_text(PLAYBOOK)
    (tmp / "vars.json").write_text(json.dumps({**SECRETS, **extra_vars}))
    cmd = ["ansible-playbook", "-i", str(tmp / "inventory.json"), str(tmp / "playbook.yml")]
    cmd += ["-e", f"@{tmp / 'vars.json'}", "--limit", host.name, *args]
    proc = run(cmd, ANSIBLE_ANY_ERRORS_FATAL="true")
    return PlaybookResult(proc.returncode, proc.stdout + proc.stderr)


# Each case: where the container sits, extra variables, host vars, expected message.
CASES = {
    "two_primaries": (
        {"db": ["H", "db-other"], "db_primary": ["H", "db-other"]},
        {},
        {},
        "postgresql_primary_hosts=['H', 'db-other'] must name exactly one host",
    ),
    "replica_without_primary": (
        {"db": ["H"], "db_replicas": ["H"]},
        {},
        {},
        "a replica with no primary has nothing to stream from",
    ),
    "host_in_no_db_role": (
        {"db": ["H", "db-p"], "db_primary": ["db-p"]},
        {},
        {},
        "the host must be in postgresql_primary_hosts or postgresql_replica_hosts",
    ),
    "unsupported_version": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_version": 14},
        {},
        "postgresql_version=14 is not supported",
    ),
    "version_not_a_whole_number": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_version": 15.0},
        {},
        "postgresql_version=15.0 is not supported",
    ),
    "port_out_of_range": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_port": "70000"},
        {},
        "Bad postgresql variable: postgresql_port: 70000 is outside 1-65535.",
    ),
    "bad_slot_name": (
        {"db": ["db-p", "H"], "db_primary": ["db-p"], "db_replicas": ["H"]},
        {},
        {"H": {"postgresql_replication_slot": "Replica-1"}},
        "'Replica-1' may contain only lower-case letters, numbers and _",
    ),
    "slot_name_too_long": (
        {"db": ["db-p", "H"], "db_primary": ["db-p"], "db_replicas": ["H"]},
        {},
        {"H": {"postgresql_replication_slot": "s" * 64}},
        "is longer than 63 characters",
    ),
    "bad_role_name": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_replication_user": "Repl-User"},
        {},
        "'Repl-User' must start with a-z or _ and contain only a-z, 0-9 and _",
    ),
    "reserved_role_name": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_replication_user": "pg_replicator"},
        {},
        "role names starting with pg_ are reserved",
    ),
    "bad_database_name": (
        {"db": ["H"], "db_primary": ["H"]},
        {
            "postgresql_databases": [
                {"name": "all", "write_user": "w", "write_password": "x", "read_user": "r", "read_password": "y"}
            ]
        },
        {},
        "'all' is reserved in pg_hba.conf",
    ),
    "memory_larger_than_ram": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_memory_mb": 100_000_000},
        {},
        "postgresql_memory_mb=100000000 is larger than the",
    ),
    "shared_buffers_larger_than_ram": (
        {"db": ["H"], "db_primary": ["H"]},
        {"postgresql_shared_buffers_mb": 100_000_000},
        {},
        "shared_buffers_mb=100000000 is not below the memory",
    ),
    "empty_secret": (
        {"db": ["H"], "db_primary": ["H"]},
        {"vault_postgresql_replication_password": ""},
        {},
        "Empty secret(s): postgresql_replication_password",
    ),
}


def _place(host: Container, case):
    groups, extra, host_vars, expected = case
    name = host.name
    groups = {g: [name if m == "H" else m for m in members] for g, members in groups.items()}
    host_vars = {name if h == "H" else h: v for h, v in host_vars.items()}
    return groups, extra, host_vars, expected.replace("'H'", repr(name))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_in_preflight_before_any_change(db_host, fingerprint_before, case):
    groups, extra, host_vars, expected = _place(db_host, CASES[case])
    result = converge(db_host, groups, extra, host_vars)
    assert result.rc != 0, result.output
    assert expected in result.output, result.output
    assert "preflight |" in result.output.split("fatal:")[0].rsplit("TASK [", 1)[1], result.output
    assert result.recap(db_host.name)["changed"] == 0
    assert untouched(db_host) == fingerprint_before


def test_good_input_passes_preflight(db_host, fingerprint_before):
    """The control: the same host and variables, without the fault, pass every preflight check."""
    result = converge(
        db_host, {"db": [db_host.name], "db_primary": [db_host.name]}, {}, {}, "--tags", "postgresql_preflight"
    )
    assert result.rc == 0, result.output
    assert result.recap(db_host.name)["failed"] == 0
    assert untouched(db_host) == fingerprint_before
