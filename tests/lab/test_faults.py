"""Faults under load that cost no request once detected: a frozen LB leaves rotation
at the ELB, a frozen replica makes its cell read from the primary, a frozen primary
leaves reads serving and makes writes fail fast, those already under way within the
statement timeout. Every request is counted; each test thaws what it froze and waits
until the fleet is whole again."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from tests.conftest import ROOT
from tests.lab.conftest import ELB, Load, haproxy_servers, lab_exec, wait_until

sys.path.insert(0, str(ROOT / "app" / "src"))
from fleet_app.db import CANCEL_GRACE  # the app's source: it is not installed on the controller

pytestmark = pytest.mark.lab

# The ELB stand-in's detection window (group_vars/elb.yml: a check every 1 s, out
# after 2 failures, each failing at its 2 s timeout), with the target.
ELB_WINDOW = 10

# A write already connected when the primary freezes returns within the statement
# timeout (the server's, which a frozen server cannot apply) and the app's grace after
# it (its cut), plus the hops between the client and the app (ELB stand-in, nginx, LB).
STATEMENT_TIMEOUT = float(
    yaml.safe_load((ROOT / "roles" / "app" / "defaults" / "main.yml").read_text())["app_db_statement_timeout"]
)
HOPS = 0.5


def elb_states() -> dict[str, str]:
    return haproxy_servers("elb")


def write_retry_after() -> str | None:
    """The Retry-After header of a refused write."""
    req = urllib.request.Request(
        f"{ELB}/items", data=b'{"name": "x"}', method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5):
            return None
    except urllib.error.HTTPError as err:
        return err.headers.get("Retry-After") if err.code == 503 else None


def cell_of(result) -> str:
    body = result[4]
    return body.get("cell", "") if isinstance(body, dict) else ""


def test_a_frozen_lb_leaves_rotation_at_the_elb_and_costs_no_request_after(freezer):
    with Load() as load:
        time.sleep(2)
        frozen = time.monotonic()
        freezer.pause("lb1")
        assert wait_until(lambda: {elb_states()[w][:4] for w in ("web1", "web2")} == {"DOWN"}, timeout=30)
        detected = time.monotonic() - frozen
        t0 = time.monotonic()
        time.sleep(10)
        t1 = time.monotonic()
        freezer.unpause("lb1")
        assert wait_until(lambda: set(elb_states().values()) == {"UP"}, timeout=30)
        back = time.monotonic()
        time.sleep(4)
    print(f"lb1 frozen: out of the ELB after {detected:.1f} s; after it {load.summary(t0, t1)}")
    assert detected <= ELB_WINDOW
    assert load.failed(t0, until=t1) == [], load.failed(t0, until=t1)[:5]
    assert len(load.since(t0, until=t1)) > 50
    assert {cell_of(r) for r in load.since(t0, until=t1)} == {"cell_b"}
    # Thawed, cell a is back in rotation.
    assert "cell_a" in {cell_of(r) for r in load.since(back)}


def test_a_frozen_replica_makes_its_cell_read_from_the_primary(hostvars, freezer):
    primary, replica1 = hostvars["primary"]["ansible_host"], hostvars["replica1"]["ansible_host"]
    with Load() as load:
        time.sleep(2)
        freezer.pause("replica1")
        t0 = time.monotonic() + 5  # the app's breaker: one 1.5 s connect deadline per worker
        time.sleep(15)
        t1 = time.monotonic()
        freezer.unpause("replica1")
        time.sleep(8)  # the breaker's retry interval (5 s) and a little
        t2 = time.monotonic()
        time.sleep(4)
    # A request that began within a connect deadline (1.5 s) of the thaw may be answered
    # by the thawed server: only those before it say where a frozen fleet reads.
    reads_a = [r for r in load.since(t0, "read", t1 - 3) if cell_of(r) == "cell_a"]
    print(f"replica1 frozen: {load.summary(t0, t1)}; cell a reads {len(reads_a)}")
    assert load.failed(t0, until=t1) == [], load.failed(t0, until=t1)[:5]
    assert len(reads_a) > 20
    assert {r[4]["read_from"] for r in reads_a} == {primary}
    assert len([r for r in load.since(t0, "write", t1) if r[2] == 201]) > 10
    # Thawed, cell a reads from its replica again; HAProxy kept every server UP.
    assert replica1 in {r[4]["read_from"] for r in load.since(t2, "read") if cell_of(r) == "cell_a"}
    assert set(haproxy_servers("lb1").values()) == {"UP"}


def items_locked() -> bool:
    """Whether a session holds the lock on the items table that stops every INSERT."""
    query = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname = 'items' AND l.mode = 'ExclusiveLock' AND l.granted"
    )
    return lab_exec("primary", 'runuser -u postgres -- psql -d app -Atc "$1"', args=(query,)).strip() == "1"


def test_a_frozen_primary_keeps_reads_serving_and_fails_writes_fast(freezer):
    with Load() as load:
        time.sleep(2)
        # Writes under way when the primary freezes: a lock on items held for 3 s stops
        # every INSERT mid-statement (connected, waiting on the server), and the primary
        # freezes 1 s into it. (Its 3 s are over, by the server's clock, before the thaw.)
        locking = time.monotonic()
        lab_exec(
            "primary",
            "setsid nohup runuser -u postgres -- psql -d app"
            " -c 'BEGIN; LOCK TABLE items IN EXCLUSIVE MODE; SELECT pg_sleep(3)' >/dev/null 2>&1 &",
        )
        assert wait_until(items_locked, timeout=10, interval=0.1)
        time.sleep(1)
        freezer.pause("primary")
        frozen = time.monotonic()
        t0 = frozen + 5
        time.sleep(10)
        retry_after = write_retry_after()
        time.sleep(5)
        t1 = time.monotonic()
        freezer.unpause("primary")
        time.sleep(8)
        t2 = time.monotonic()
        time.sleep(4)
    # Every write sent after the freeze, the first of each worker included (its connect
    # meets the app's 1.5 s deadline), and before the thaw could answer it.
    writes = load.since(frozen, "write", t1 - 3)
    slowest = max((r[3] for r in writes), default=0.0)
    # The writes the lock held: sent before the freeze, answered after it (connected,
    # mid-statement when the primary froze).
    held = [r for r in load.since(locking, "write", frozen) if r[0] + r[3] > frozen]
    held_slowest = max((r[3] for r in held), default=0.0)
    bound = STATEMENT_TIMEOUT + CANCEL_GRACE + HOPS
    print(
        f"primary frozen: {load.summary(t0, t1)}; {len(writes)} writes answered in at most {slowest:.2f} s;"
        f" {len(held)} writes under way at the freeze answered in at most {held_slowest:.2f} s (bound {bound:g} s)"
    )
    # Each client thread sends one of every four requests as a write: within the second
    # the lock is held, each of the four is waiting on one.
    assert len(held) >= 3, held
    assert {r[2] for r in held} == {503}, held
    assert held_slowest <= bound, held
    assert load.failed(t0, "read", t1) == [], load.failed(t0, "read", t1)[:5]
    assert len(load.since(t0, "read", t1)) > 50
    assert writes
    assert {r[2] for r in writes} == {503}
    assert retry_after is not None
    assert int(retry_after) >= 1, retry_after
    assert all(isinstance(r[4], dict) and "error" in r[4] for r in writes)
    assert slowest <= 2.0
    # Thawed, writes succeed again.
    assert load.failed(t2, "write") == [], load.failed(t2, "write")[:5]
    assert len(load.since(t2, "write")) > 5
    assert set(haproxy_servers("lb1").values()) == set(haproxy_servers("lb2").values()) == {"UP"}
