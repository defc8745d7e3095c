"""Real state of the PostgreSQL tier: a primary, two streaming replicas, an app host.

Every test runs once (no ``host`` fixture): the nodes are reached by name with
``docker exec``, which is what molecule's docker driver created them with.
Measured delays and run times go to $FLEET_MEASUREMENTS (default
/tmp/fleet-postgresql-measurements.json) for the closing note of issue 3.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from scripts.recap import hosts_with_drift, parse_recap

SCENARIO = Path(__file__).resolve().parents[1]
PRIMARY = "db-primary"
REPLICAS = ("db-replica1", "db-replica2")
APP = "db-app1"
DATA_DIR = "/var/lib/postgresql/15/main"
SECRETS = yaml.safe_load((SCENARIO / "vars" / "vault.yml").read_text())
MEASUREMENTS = Path(os.environ.get("FLEET_MEASUREMENTS", "/tmp/fleet-postgresql-measurements.json"))


def record(key: str, value: object) -> None:
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[key] = value
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True))


def sh(node: str, script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    flags = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
    return subprocess.run(
        ["docker", "exec", *flags, node, "bash", "-c", script], capture_output=True, text=True, check=False
    )


def sql(node: str, query: str, db: str = "app") -> str:
    """Run ``query`` as the postgres superuser on ``node``'s local socket; return its rows."""
    proc = sh(node, f"runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d {db} -c {quote(query)}")
    assert proc.returncode == 0, f"{node}: {query}\n{proc.stderr}"
    return proc.stdout.strip()


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def address(node: str) -> str:
    return sh(node, "hostname -I").stdout.split()[0]


@pytest.fixture(scope="module")
def app_psql(fleet_ports) -> Callable[..., subprocess.CompletedProcess[str]]:
    """app_psql(node, user, query, target=PRIMARY): connect over TCP from ``node`` to
    ``target``'s app database on fleet_port_postgres as ``user``, with its password.
    (Local ``sql`` needs no port: Debian's psql wrapper reads it from the cluster.)"""

    def connect(node: str, user: str, query: str, target: str = PRIMARY) -> subprocess.CompletedProcess[str]:
        password = SECRETS[f"vault_postgresql_{user}_password"]
        script = (
            f"psql -XAtq -v ON_ERROR_STOP=1 'host={address(target)} port={fleet_ports['postgres']} dbname=app"
            f" user={user} connect_timeout=5' -c {quote(query)}"
        )
        return sh(node, script, env={"PGPASSWORD": password})

    return connect


def converge(extra_vars: dict | None = None, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "converge.yml"), *args]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    started = time.monotonic()
    # molecule forces colour for its own runs (unless NO_COLOR is set, as bin/fleet does);
    # the recap is parsed, so none here.
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    return proc, time.monotonic() - started


def wait_for(predicate, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` is true, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


@pytest.fixture(scope="module")
def table(app_psql):
    """A table owned by the app's write user, created from the app host."""
    proc = app_psql(APP, "app_rw", "CREATE TABLE IF NOT EXISTS fleet_test (id bigint PRIMARY KEY, note text)")
    assert proc.returncode == 0, proc.stderr
    return "fleet_test"


# Check mode first: later tests converge with other settings.
def test_check_mode_reports_no_change_on_converged_cluster(check_mode_stats):
    recap, output = check_mode_stats
    assert set(recap) == {PRIMARY, *REPLICAS, APP}, output
    assert hosts_with_drift(recap) == {}, output


def test_primary_listens_on_its_private_address_only(fleet_ports):
    port = fleet_ports["postgres"]
    listening = sh(PRIMARY, f"ss -Hltn 'sport = :{port}'").stdout
    bound = sorted(line.split()[3] for line in listening.splitlines())
    assert bound == sorted([f"{address(PRIMARY)}:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"]) or bound == sorted(
        [f"{address(PRIMARY)}:{port}", f"127.0.0.1:{port}"]
    ), bound
    assert sql(PRIMARY, "SHOW password_encryption") == "scram-sha-256"
    assert sql(PRIMARY, "SELECT pg_is_in_recovery()") == "f"


def test_settings_are_sized_for_the_memory_given():
    # converge.yml sizes each cluster for 1 GB: a quarter and three quarters of it.
    for node in (PRIMARY, *REPLICAS):
        assert sql(node, "SHOW shared_buffers") == "256MB"
        assert sql(node, "SHOW effective_cache_size") == "768MB"
        assert sql(node, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
        assert sql(node, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"
        assert sql(node, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"


def test_both_replicas_stream_through_their_own_active_slot():
    rows = sql(
        PRIMARY,
        "SELECT r.application_name, r.state, s.slot_name, s.active"
        " FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid"
        " ORDER BY 1",
    ).splitlines()
    assert rows == ["db_replica1|streaming|db_replica1|t", "db_replica2|streaming|db_replica2|t"]
    for node in REPLICAS:
        assert sql(node, "SELECT pg_is_in_recovery()") == "t"
        assert sql(node, "SELECT status, slot_name FROM pg_stat_wal_receiver") == f"streaming|{node.replace('-', '_')}"
        assert sh(node, f"test -f {DATA_DIR}/standby.signal").returncode == 0


def test_row_written_on_primary_is_read_on_both_replicas_within_5s(table):
    marker = f"delay-{time.time_ns()}"
    sql(PRIMARY, f"INSERT INTO {table} VALUES ({time.time_ns() // 1000}, '{marker}')")
    delays = {}
    for node in REPLICAS:
        delays[node] = wait_for(
            lambda n=node: sql(n, f"SELECT count(*) FROM {table} WHERE note = '{marker}'") == "1", 5
        )
    record("replication_delay_s", delays)
    # The server's own measurement (NULL once the replica has been idle for a while).
    lag = sql(PRIMARY, "SELECT application_name || ' ' || coalesce(replay_lag::text, 'idle') FROM pg_stat_replication")
    record("replay_lag", lag.splitlines())
    assert all(delay is not None for delay in delays.values()), delays


def test_write_on_a_replica_fails(table):
    for node in REPLICAS:
        proc = sh(node, f"runuser -u postgres -- psql -XAtq -d app -c \"INSERT INTO {table} VALUES (-1, 'no')\"")
        assert proc.returncode != 0
        assert "read-only transaction" in proc.stderr


def test_app_host_connects_to_primary_and_its_replica(app_psql, table):
    assert app_psql(APP, "app_rw", "SELECT 1").stdout.strip() == "1"
    assert app_psql(APP, "app_ro", f"SELECT count(*) >= 0 FROM {table}", target="db-replica1").stdout.strip() == "t"


def test_host_outside_the_app_group_is_rejected_by_pg_hba(app_psql):
    # db-replica2 is a database host, not an app host: the right password is not enough.
    proc = app_psql("db-replica2", "app_rw", "SELECT 1")
    assert proc.returncode != 0
    assert "no pg_hba.conf entry" in proc.stderr
    assert f'host "{address("db-replica2")}"' in proc.stderr


def test_read_only_user_cannot_write(app_psql, table):
    assert app_psql(APP, "app_ro", f"SELECT count(*) >= 0 FROM {table}").stdout.strip() == "t"
    for statement in (
        f"INSERT INTO {table} VALUES (-2, 'no')",
        f"DELETE FROM {table}",
        "CREATE TABLE fleet_ro_attempt (id int)",
    ):
        proc = app_psql(APP, "app_ro", statement)
        assert proc.returncode != 0, statement
        assert "permission denied" in proc.stderr, proc.stderr


# --- The clone guard: a replica whose control file cannot be read is never wiped -----
#
# On db-replica1, its global/pg_control made unreadable, a converge must stop naming
# the host and the file and leave the data directory as it was: unreadable (mode
# 000) in a normal run, garbage (a CRC mismatch, which pg_controldata only warns
# about) in --check, as a drift run does. The control (a standby of another cluster,
# whose control file reads fine, is cloned again) is the last test of the file: it
# gives cell b its replica back after the promotion. Before the re-converge tests
# (file order is run order): the cluster runs converge.yml's own settings.

GUARDED = "db-replica1"
GUARD_TASK = "replica | Stop when the control file cannot be read"
CONTROL_FILE = f"{DATA_DIR}/global/pg_control"
MARKER = f"{DATA_DIR}/fleet-guard-marker"


def on_guarded(script: str) -> str:
    proc = sh(GUARDED, script)
    assert proc.returncode == 0, f"{GUARDED}: {script}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def data_dir_fingerprint() -> str:
    """What a wipe or a clone would change: the marker, PG_VERSION, the file list, standby.signal."""
    return on_guarded(
        f"cat {MARKER} {DATA_DIR}/PG_VERSION; ls {DATA_DIR}; test -e {DATA_DIR}/standby.signal && echo standby"
    )


def system_identifier(node: str) -> str:
    return sql(node, "SELECT system_identifier FROM pg_control_system()", db="postgres")


def assert_stopped_by_the_guard(proc: subprocess.CompletedProcess[str], before: str, problem: str) -> None:
    output = proc.stdout + proc.stderr
    # First what matters most: the data directory is still the one that was there.
    assert data_dir_fingerprint() == before, f"the data directory was wiped or changed:\n{output[-4000:]}"
    assert proc.returncode != 0, output[-4000:]
    failed_task = output.split("fatal:")[0].rsplit("TASK [", 1)[-1]
    assert failed_task.startswith(f"postgresql : {GUARD_TASK}"), output[-4000:]
    message = " ".join(output.split())
    assert f"{GUARDED}: cannot read the control file {CONTROL_FILE}" in message, output[-4000:]
    assert problem in message, output[-4000:]
    assert f"nothing was changed in {DATA_DIR}: no clone, no wipe" in message, output[-4000:]
    assert parse_recap(output)[GUARDED]["changed"] == 0


@pytest.fixture
def marked() -> Iterator[str]:
    """A marker in the guarded replica's data directory; the fingerprint with it in place."""
    on_guarded(f"echo {uuid.uuid4().hex} > {MARKER}")
    yield data_dir_fingerprint()
    sh(GUARDED, f"rm -f {MARKER}")


@contextmanager
def control_file_at_rest() -> Iterator[None]:
    """The guarded standby writes its pg_control no more until the block ends.

    A running standby rewrites pg_control at each restartpoint and whenever it moves
    minRecoveryPoint: that would quietly mend garbage mid-run, and on a file made
    unreadable it PANICs and stops the server (both seen on a loaded machine, where
    a converge takes long enough for a restartpoint). Paused replay after a
    restartpoint writes nothing."""
    sql(GUARDED, "SELECT pg_wal_replay_pause()", db="postgres")
    sql(GUARDED, "CHECKPOINT", db="postgres")
    try:
        yield
    finally:
        sql(GUARDED, "SELECT pg_wal_replay_resume()", db="postgres")


def test_unreadable_control_file_stops_the_run_before_any_wipe(marked):
    with control_file_at_rest():
        on_guarded(f"chmod 000 {CONTROL_FILE}")
        try:
            proc, _ = converge()
            assert_stopped_by_the_guard(proc, marked, "Permission denied")
        finally:
            sh(GUARDED, f"chmod 600 {CONTROL_FILE}")


def test_corrupt_control_file_stops_a_check_run_too(marked):
    """Garbage of the right size, where pg_controldata only warns (exit 0); in --check, as a drift run does."""
    with control_file_at_rest():
        on_guarded(f"cp -p {CONTROL_FILE} /root/pg_control.good && head -c 8192 /dev/urandom > {CONTROL_FILE}")
        try:
            proc, _ = converge(None, "--check")
            assert_stopped_by_the_guard(proc, marked, "CRC checksum does not match")
        finally:
            sh(GUARDED, f"cp -p /root/pg_control.good {CONTROL_FILE}")


# --- A restart-only change: one server at a time, the replicas first, the primary last ---
#
# shared_buffers needs a restart. The restarts are driven from one host: each server
# restarted must accept connections (a replica: stream again) before the next one
# goes down. Not put back after: every converge after this test carries the same
# change (RESTART_CHANGE), so a restore (one more rolling restart, about 30 s) is not
# needed for the re-converge tests below to change only what they mean to.

DB_NODES = (*REPLICAS, PRIMARY)  # the order of the restarts
RESTART_CHANGE = {"postgresql_shared_buffers_mb": 192}


def postmaster_started() -> dict[str, float]:
    return {n: float(sql(n, "SELECT extract(epoch FROM pg_postmaster_start_time())", db="postgres")) for n in DB_NODES}


def restart_steps(output: str) -> list[tuple[str, str, str]]:
    """(task of restart.yml, server it ran on, status) in the order of the run's output."""
    steps = []
    for section in re.sub(r"\x1b\[[0-9;]*m", "", output).split("TASK [postgresql : restart | ")[1:]:
        task, section = section.split(" ", 1)[0], section.split("\nTASK [", 1)[0]
        for status, host, delegated in re.findall(r"^(ok|changed): \[([^\]\s]+)(?: -> ([^\]\s]+))?\]", section, re.M):
            steps.append((task, delegated or host, status))
    return steps


def test_restart_only_change_restarts_one_server_at_a_time_primary_last():
    before = postmaster_started()
    proc, seconds = converge(RESTART_CHANGE)
    record("rolling_restart_converge_s", round(seconds, 1))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    after = postmaster_started()
    # Seconds from the first replica's start to each server's.
    record("rolling_restart_started_s", {n: round(after[n] - after[DB_NODES[0]], 2) for n in DB_NODES})
    assert all(after[n] > before[n] for n in DB_NODES), (before, after)  # each one restarted
    # replica1, then replica2, then the primary: each strictly after the one before.
    assert all(after[a] < after[b] for a, b in itertools.pairwise(DB_NODES)), after
    # Each server read, restarted and waited for (a replica: streaming) before the next one.
    assert restart_steps(proc.stdout) == [
        step for n in DB_NODES for step in (("Read", n, "ok"), ("Restart", n, "changed"), ("Wait", n, "ok"))
    ], proc.stdout[-6000:]
    for node in DB_NODES:
        assert sql(node, "SHOW shared_buffers") == "192MB", node
    for node in REPLICAS:
        streaming = wait_for(lambda n=node: sql(n, "SELECT status FROM pg_stat_wal_receiver") == "streaming", 30)
        assert streaming is not None, f"{node} does not stream after its restart"


# --- Re-converge with a reload-only change while an app writes -----------------

WRITER = r"""
i=0
while [ ! -e /tmp/fleet-writer-stop ]; do
  i=$((i+1))
  if psql -XAtq -v ON_ERROR_STOP=1 "host=$PRIMARY port=$PGPORT dbname=app user=app_rw connect_timeout=5" \
       -c "INSERT INTO fleet_writes VALUES ($i)" >/dev/null 2>>/tmp/fleet-writer.err; then
    echo "$i"
  fi
done
"""


def replica_identity(node: str) -> dict[str, str]:
    """What a re-clone would change: system identifier, inode of PG_VERSION, our marker file."""
    controldata = sh(node, f"LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D {DATA_DIR}").stdout
    return {
        "system_identifier": re.search(r"Database system identifier:\s+(\d+)", controldata)[1],
        "pg_version_inode": sh(node, f"stat -c %i {DATA_DIR}/PG_VERSION").stdout.strip(),
        "marker": sh(node, f"cat {DATA_DIR}/fleet-test-marker").stdout.strip(),
        "started": sql(node, "SELECT pg_postmaster_start_time()"),
    }


@pytest.fixture(scope="module")
def reconverge_under_load(app_psql, fleet_ports):
    """Converge again with a reload-only change while db-app1 inserts rows continuously."""
    assert app_psql(APP, "app_rw", "CREATE TABLE IF NOT EXISTS fleet_writes (id bigint PRIMARY KEY)").returncode == 0
    for node in REPLICAS:
        sh(node, f"echo {node}-not-recloned > {DATA_DIR}/fleet-test-marker")
    before = {node: replica_identity(node) for node in (PRIMARY, *REPLICAS)}
    sh(APP, "rm -f /tmp/fleet-writer-stop /tmp/fleet-writer.err")
    writer = subprocess.Popen(
        [
            "docker",
            "exec",
            "-e",
            f"PGPASSWORD={SECRETS['vault_postgresql_app_rw_password']}",
            "-e",
            f"PRIMARY={address(PRIMARY)}",
            "-e",
            f"PGPORT={fleet_ports['postgres']}",
            APP,
            "bash",
            "-c",
            WRITER,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        proc, seconds = converge({**RESTART_CHANGE, "postgresql_settings": {"log_min_duration_statement": 250}})
        time.sleep(2)
    finally:
        sh(APP, "touch /tmp/fleet-writer-stop")
        acknowledged = [int(line) for line in writer.communicate(timeout=60)[0].split()]
    after = {node: replica_identity(node) for node in (PRIMARY, *REPLICAS)}
    record("reload_converge_under_load_s", round(seconds, 1))
    # No converge back to converge.yml's settings after the tests: the ones after it
    # carry the same (issue 27).
    return {
        "proc": proc,
        "acknowledged": acknowledged,
        "errors": sh(APP, "cat /tmp/fleet-writer.err").stdout,
        "before": before,
        "after": after,
    }


def test_reconverge_with_reload_only_change_succeeds(reconverge_under_load):
    proc = reconverge_under_load["proc"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "RUNNING HANDLER [postgresql : Reload postgresql]" in proc.stdout
    for node in (PRIMARY, *REPLICAS):
        assert sql(node, "SHOW log_min_duration_statement") == "250ms"


def test_reload_only_change_restarts_nothing(reconverge_under_load):
    before, after = reconverge_under_load["before"], reconverge_under_load["after"]
    for node in (PRIMARY, *REPLICAS):
        assert after[node]["started"] == before[node]["started"], node


def test_reconverge_does_not_reclone_a_healthy_replica(reconverge_under_load):
    before, after = reconverge_under_load["before"], reconverge_under_load["after"]
    for node in REPLICAS:
        assert after[node] == before[node], node
        assert after[node]["marker"] == f"{node}-not-recloned"
        assert after[node]["system_identifier"] == before[PRIMARY]["system_identifier"]
    # The clone task ran but was skipped on every replica.
    section = reconverge_under_load["proc"].stdout.split("replica | Copy the primary with pg_basebackup]")[1]
    section = section.split("TASK [")[0]
    assert "changed:" not in section, section
    for node in REPLICAS:
        assert f"skipping: [{node}]" in section, section


def test_no_acknowledged_row_is_lost(reconverge_under_load):
    acknowledged = set(reconverge_under_load["acknowledged"])
    record("writer_rows_acknowledged", len(acknowledged))
    assert len(acknowledged) > 50, reconverge_under_load["errors"]
    top = max(acknowledged)
    for node in (PRIMARY, *REPLICAS):
        caught_up = wait_for(lambda n=node: sql(n, f"SELECT count(*) FROM fleet_writes WHERE id = {top}") == "1", 10)
        assert caught_up is not None, f"{node} never saw row {top}"
        present = {int(row) for row in sql(node, "SELECT id FROM fleet_writes").split()}
        missing = acknowledged - present
        assert not missing, f"{node} lost {len(missing)} acknowledged rows: {sorted(missing)[:20]}"
    assert reconverge_under_load["errors"] == "", reconverge_under_load["errors"]


# --- A replica that was promoted holds data: fleet never wipes it ---------------


@pytest.fixture(scope="module")
def promoted_replica(reconverge_under_load):
    """db-replica2 promoted by hand (as in a failover outside the playbooks), then a
    converge and a check run (as the drift check runs) that must both stop on it."""
    node = "db-replica2"
    sql(node, "SELECT pg_promote(wait => true)")
    before = {n: replica_identity(n) for n in (PRIMARY, *REPLICAS)}
    proc, _ = converge(RESTART_CHANGE)
    check, _ = converge(RESTART_CHANGE, "--check")
    after = {n: replica_identity(n) for n in (PRIMARY, *REPLICAS)}
    return {
        "runs": {"converge": proc, "check": check},
        "before": before,
        "after": after,
        "databases": sql(node, "SELECT datname FROM pg_database"),
    }


@pytest.mark.parametrize("run", ["converge", "check"])
def test_a_replica_promoted_by_hand_stops_every_run_before_any_change(promoted_replica, run):
    """Split brain: db-primary and db-replica2 both out of recovery, the same cluster.
    The run stops in the preflight of every database host, naming both, and changes
    nothing anywhere: the promoted replica's data (its app database) is kept."""
    proc = promoted_replica["runs"][run]
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-4000:]
    message = " ".join(output.split())
    split = "Split brain: db-primary and db-replica2 run the same PostgreSQL cluster out of recovery"
    assert split in message, output[-4000:]
    assert "Nothing was changed on any database host" in message
    # Every database host failed (Ansible prints that on stderr), and at the guard, the
    # preflight's last task: the last the run started (on stdout).
    assert set(re.findall(r"^fatal: \[([^\]]+)\]", output, flags=re.M)) == {PRIMARY, *REPLICAS}, output[-4000:]
    tasks = re.findall(r"^TASK \[(.+?)\]", proc.stdout, flags=re.M)
    guard = "postgresql : preflight | Stop when two hosts run this cluster out of recovery"
    assert tasks[-1].startswith(guard), tasks[-3:]
    recap = parse_recap(output)
    assert all(recap[n]["changed"] == 0 for n in (PRIMARY, *REPLICAS)), recap
    before, after = promoted_replica["before"], promoted_replica["after"]
    assert after == before
    assert after["db-replica2"]["marker"] == "db-replica2-not-recloned"
    assert "app" in promoted_replica["databases"].split()
    assert sh("db-replica2", f"test -e {DATA_DIR}/standby.signal").returncode != 0


# --- The clone guard's control, last: a standby of another cluster is cloned again ---


def test_standby_of_another_cluster_is_cloned_again(promoted_replica):
    """A readable control file with another system identifier (a fresh initdb with
    standby.signal, in place of the promoted cluster, which an operator moved aside) is
    replaced by a clone of the primary: cell b has its replica back."""
    node, service, marker = "db-replica2", "postgresql@15-main", f"{DATA_DIR}/fleet-other-cluster-marker"
    reset = sh(
        node,
        f"systemctl stop {service} && mv {DATA_DIR} {DATA_DIR}.promoted"
        f" && runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb --auth=peer -D {DATA_DIR} >/dev/null"
        f" && runuser -u postgres -- touch {DATA_DIR}/standby.signal {marker} && systemctl start {service}",
    )
    assert reset.returncode == 0, reset.stderr
    assert system_identifier(node) != system_identifier(PRIMARY)
    proc, _ = converge(RESTART_CHANGE)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert system_identifier(node) == system_identifier(PRIMARY), proc.stdout[-4000:]
    assert sh(node, f"test -e {marker}").returncode == 1, "the other cluster's files are still there"
    assert sh(node, f"test -e {DATA_DIR}/standby.signal").returncode == 0
    streaming = wait_for(lambda: sql(node, "SELECT status FROM pg_stat_wal_receiver") == "streaming", 30)
    assert streaming is not None, "the re-cloned replica does not stream"
    # What the operator moved aside is left alone.
    assert sh(node, f"test -s {DATA_DIR}.promoted/PG_VERSION").returncode == 0
