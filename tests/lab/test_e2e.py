"""The whole request path of the lab, end to end, and what happens when hosts fail."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.lab.conftest import ELB, haproxy_servers, http, http_from, wait_until

pytestmark = pytest.mark.lab


def cells_served(n: int = 24) -> dict[str, int]:
    seen: dict[str, int] = {}
    for _ in range(n):
        status, body = http("GET", f"{ELB}/healthz")
        assert status == 200, body
        seen[body["cell"]] = seen.get(body["cell"], 0) + 1
    return seen


def web_url(hostvars, web: str) -> str:
    return f"http://{hostvars[web]['ansible_host']}"


def via_elb(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    """A request straight to one web server, sent from the ELB stand-in: the only host
    the web servers' firewalls admit HTTP from."""
    return http_from("elb", method, url, body)


def test_groups_are_the_contract(groups):
    assert groups["web"] == ["web1", "web2", "web3", "web4"]
    assert groups["lb"] == ["lb1", "lb2"]
    assert groups["app"] == ["app1", "app2", "app3", "app4"]
    assert groups["db_primary"] == ["primary"]
    assert groups["db_replicas"] == ["replica1", "replica2"]
    assert groups["cell_a"] == ["app1", "app2", "lb1", "replica1", "web1", "web2"]
    assert groups["cell_b"] == ["app3", "app4", "lb2", "replica2", "web3", "web4"]


def test_requests_through_the_elb_reach_both_cells_and_the_database():
    seen = cells_served()
    assert len(seen) == 2, seen
    status, body = http("GET", f"{ELB}/healthz")
    assert status == 200, body
    # Writes reach the primary; reads really come from a replica (in recovery).
    assert body["checks"]["write"]["ok"] is True
    assert body["checks"]["write"]["in_recovery"] is False
    assert body["checks"]["read"]["ok"] is True
    assert body["checks"]["read"]["in_recovery"] is True


@pytest.mark.parametrize(("web", "apps"), [("web1", {"app1", "app2"}), ("web4", {"app3", "app4"})])
def test_a_web_server_reaches_both_app_servers_of_its_cell_in_turn(hostvars, web, apps):
    served = []
    for _ in range(6):
        status, body = via_elb("GET", f"{web_url(hostvars, web)}/healthz")
        assert status == 200, body
        served.append(body["host"])
    # Round robin over exactly the cell's app servers: each answers about half.
    assert set(served) == apps, served
    assert min(served.count(app) for app in apps) >= 2, served


def test_item_written_through_cell_a_is_read_back_through_cell_b(hostvars):
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    status, created = via_elb("POST", f"{web_url(hostvars, 'web1')}/items", {"name": name})
    assert status in (200, 201), created
    assert created["cell"].endswith("a")

    def visible_in_cell_b() -> bool:
        status, body = via_elb("GET", f"{web_url(hostvars, 'web3')}/items")
        return status == 200 and body["cell"].endswith("b") and any(i["name"] == name for i in body["items"])

    t0 = time.monotonic()
    assert wait_until(visible_in_cell_b, timeout=5), "the item did not reach replica2 within 5 s"
    print(f"replicated to cell b in {time.monotonic() - t0:.2f} s")


@pytest.mark.parametrize(("lb", "apps"), [("lb1", {"app1", "app2"}), ("lb2", {"app3", "app4"})])
def test_each_lb_balances_exactly_its_cells_app_servers(lb, apps):
    servers = haproxy_servers(lb)
    assert set(servers) == apps
    assert set(servers.values()) == {"UP"}


def test_both_replicas_stream_from_the_primary(host):
    out = host("primary").check_output(
        'runuser -u postgres -- psql -Atc "select application_name, state from pg_stat_replication order by 1"'
    )
    assert out.splitlines() == ["replica1|streaming", "replica2|streaming"]


def test_a_dead_app_server_is_routed_around_and_returns(freezer):
    freezer.pause("app1")
    assert wait_until(lambda: haproxy_servers("lb1")["app1"].startswith("DOWN"), timeout=30)
    failures = [s for s, _ in (http("GET", f"{ELB}/healthz") for _ in range(40)) if s != 200]
    assert failures == []
    freezer.unpause("app1")
    assert wait_until(lambda: haproxy_servers("lb1")["app1"] == "UP", timeout=30)


def test_a_dead_web_server_is_routed_around_by_the_elb(freezer):
    freezer.pause("web3")

    def all_ok() -> bool:
        return all(http("GET", f"{ELB}/healthz", timeout=3)[0] == 200 for _ in range(20))

    assert wait_until(all_ok, timeout=30)
    freezer.unpause("web3")
    assert wait_until(all_ok, timeout=30)
