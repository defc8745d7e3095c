"""The replica clone guard of role postgresql never wipes a data directory it cannot read.

A primary and a replica are converged for real (the replica is a streaming
standby with standby.signal); then the replica's global/pg_control is made
unreadable, and a converge must stop with a message naming the host and the
file, and leave the data directory as it was: unreadable (mode 000) in a normal
run, garbage (a CRC mismatch, which pg_controldata only warns about) in --check.
The control: a standby of another cluster, whose control file reads fine, is
still cloned again.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, run
from tests.containers.conftest import Container, PlaybookResult, start_container

pytestmark = pytest.mark.containers

DATA_DIR = "/var/lib/postgresql/15/main"
CONTROL_FILE = f"{DATA_DIR}/global/pg_control"
MARKER = f"{DATA_DIR}/fleet-test-marker"
GUARD_TASK = "replica | Stop when the control file cannot be read"
PLAYBOOK = """---
- name: Converge the PostgreSQL tier
  hosts: db
  any_errors_fatal: true
  vars:
    # Two clusters share this machine: size each for 512 MB, not for the host's RAM.
    postgresql_memory_mb: 512
    vault_postgresql_replication_password: replica-guard-test
    vault_postgresql_app_rw_password: replica-guard-test-rw
    vault_postgresql_app_ro_password: replica-guard-test-ro
  roles:
    - role: postgresql
"""


@dataclass
class Pair:
    primary: Container
    replica: Container
    workdir: Path

    def converge(self, *args: str) -> PlaybookResult:
        """Run the role over both hosts, with fleet's group_vars and a fact cache of this test only."""
        connection = {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}
        inventory = {
            "all": {
                "hosts": {self.primary.name: connection, self.replica.name: connection},
                "children": {
                    "db": {"hosts": {self.primary.name: {}, self.replica.name: {}}},
                    "db_primary": {"hosts": {self.primary.name: {}}},
                    "db_replicas": {"hosts": {self.replica.name: {}}},
                },
            }
        }
        (self.workdir / "inventory.json").write_text(json.dumps(inventory))
        cmd = [
            "ansible-playbook",
            "-i",
            str(self.workdir / "inventory.json"),
            str(self.workdir / "playbook.yml"),
            *args,
        ]
        # Pipelining, as production has over SSH: fewer docker execs per task, a shorter test.
        proc = run(cmd, ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.workdir / "facts"), ANSIBLE_PIPELINING="1")
        return PlaybookResult(proc.returncode, proc.stdout + proc.stderr)

    def replica_sh(self, script: str) -> str:
        return checked(self.replica, script)


def checked(host: Container, script: str) -> str:
    proc = host.sh(script)
    assert proc.returncode == 0, f"{host.name}: {script}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def system_identifier(host: Container) -> str:
    return checked(host, "su postgres -c \"psql -Atc 'SELECT system_identifier FROM pg_control_system()'\"").strip()


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[Pair]:
    """A converged primary and a streaming replica, removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = [f"fleet-test-pgp-{suffix}", f"fleet-test-pgr-{suffix}"]
    workdir = tmp_path_factory.mktemp(f"replica-guard-{suffix}")
    # Ansible reads group_vars next to the inventory: the fleet's own, as in every inventory.
    (workdir / "group_vars").symlink_to(ROOT / "group_vars")
    (workdir / "playbook.yml").write_text(PLAYBOOK)
    try:
        primary, replica = (start_container(name, ("db",), workdir) for name in names)
        pair = Pair(primary, replica, workdir)
        result = pair.converge()
        assert result.rc == 0, result.output
        pair.replica_sh(f"test -e {DATA_DIR}/standby.signal")
        yield pair
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)


def data_dir_fingerprint(pair: Pair) -> str:
    """What a wipe or a clone would change: the marker, PG_VERSION, the file list, standby.signal."""
    return pair.replica_sh(
        f"cat {MARKER} {DATA_DIR}/PG_VERSION; ls {DATA_DIR}; test -e {DATA_DIR}/standby.signal && echo standby"
    )


def assert_stopped_by_the_guard(pair: Pair, result: PlaybookResult, before: str, problem: str) -> None:
    # First what matters most: the data directory is still the one that was there.
    assert data_dir_fingerprint(pair) == before, f"the data directory was wiped or changed:\n{result.output}"
    assert result.rc != 0, result.output
    failed_task = result.output.split("fatal:")[0].rsplit("TASK [", 1)[-1]
    assert failed_task.startswith(f"postgresql : {GUARD_TASK}"), result.output
    message = " ".join(result.output.split())
    assert f"{pair.replica.name}: cannot read the control file {CONTROL_FILE}" in message, result.output
    assert problem in message, result.output
    assert f"nothing was changed in {DATA_DIR}: no clone, no wipe" in message, result.output
    assert result.recap(pair.replica.name)["changed"] == 0


@pytest.fixture
def marked(pair) -> Iterator[str]:
    """A marker in the replica's data directory; the fingerprint with it in place."""
    pair.replica_sh(f"echo {uuid.uuid4().hex} > {MARKER}")
    yield data_dir_fingerprint(pair)
    pair.replica.sh(f"rm -f {MARKER}")


def test_unreadable_control_file_stops_the_run_before_any_wipe(pair, marked):
    pair.replica_sh(f"chmod 000 {CONTROL_FILE}")
    try:
        result = pair.converge()
        assert_stopped_by_the_guard(pair, result, marked, "Permission denied")
    finally:
        pair.replica.sh(f"chmod 600 {CONTROL_FILE}")


def test_corrupt_control_file_stops_a_check_run_too(pair, marked):
    """Garbage of the right size, where pg_controldata only warns (exit 0); in --check, as a drift run does."""
    pair.replica_sh(f"cp -p {CONTROL_FILE} /root/pg_control.good && head -c 8192 /dev/urandom > {CONTROL_FILE}")
    try:
        result = pair.converge("--check")
        assert_stopped_by_the_guard(pair, result, marked, "CRC checksum does not match")
    finally:
        pair.replica.sh(f"cp -p /root/pg_control.good {CONTROL_FILE}")


def test_standby_of_another_cluster_is_cloned_again(pair):
    """A readable control file with another system identifier (a fresh initdb with standby.signal) is replaced."""
    service = "postgresql@15-main"
    pair.replica_sh(
        f"systemctl stop {service} && rm -rf {DATA_DIR}"
        f" && su postgres -c '/usr/lib/postgresql/15/bin/initdb --auth=peer -D {DATA_DIR}' >/dev/null"
        f" && su postgres -c 'touch {DATA_DIR}/standby.signal {MARKER}' && systemctl start {service}"
    )
    assert system_identifier(pair.replica) != system_identifier(pair.primary)
    result = pair.converge()
    assert result.rc == 0, result.output
    assert system_identifier(pair.replica) == system_identifier(pair.primary), result.output
    assert pair.replica.sh(f"test -e {MARKER}").returncode == 1, "the other cluster's files are still there"
    pair.replica_sh(f"test -e {DATA_DIR}/standby.signal")
