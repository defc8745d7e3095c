"""Faults under load that cost no request once detected: a frozen LB leaves rotation
at the ELB, a frozen replica makes its cell read from the primary, a frozen primary
leaves reads serving and makes writes fail fast. Every request is counted; each test
thaws what it froze and waits until the fleet is whole again."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from tests.lab.conftest import ELB, Load, haproxy_servers, wait_until

pytestmark = pytest.mark.lab

# The ELB stand-in's detection window (group_vars/elb.yml: a check every 1 s, out
# after 2 failures, each failing at its 2 s timeout), with the target.
ELB_WINDOW = 10


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


def test_a_frozen_primary_keeps_reads_serving_and_fails_writes_fast(freezer):
    with Load() as load:
        time.sleep(2)
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
    print(f"primary frozen: {load.summary(t0, t1)}; {len(writes)} writes answered in at most {slowest:.2f} s")
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
