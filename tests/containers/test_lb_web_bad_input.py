"""Bad variables for roles haproxy and nginx fail before any change, naming the variable.

One never-converged container serves both roles: it is put into group lb for
playbooks/lb.yml and into group web for playbooks/web.yml (a Container is only a
name and the groups its inventory puts it in). That a bad template never replaces a
working configuration is tested on converged hosts in the molecule scenarios
(molecule/haproxy, molecule/nginx: test_config_that_fails_validation_...).
"""

from __future__ import annotations

import pytest

from tests.containers.conftest import Container, assert_complaint

pytestmark = pytest.mark.containers

GOOD_LB = {"haproxy_backend_servers": [{"name": "app1", "address": "127.0.0.1", "port": 8000}]}
GOOD_WEB = {"nginx_upstream_host": "127.0.0.1"}
FINGERPRINT = "dpkg-query -W -f '${Package} ${Status}\\n' haproxy nginx socat 2>&1; ls -A /etc/haproxy /etc/nginx 2>&1"


def as_member(host: Container, tmp_path, *groups: str) -> Container:
    """The same container, in the inventory groups ``groups``."""
    return Container(host.name, groups, tmp_path)


@pytest.fixture(scope="module")
def fingerprint_before(fresh_host):
    """What a converge of either role would change first; it must stay as it is."""
    return fresh_host.sh(FINGERPRINT).stdout


def assert_failed_before_any_change(
    host: Container, result, expected: str, fingerprint: str, blames: set[str], prefix: str
) -> None:
    # The complaint names the bad variable and no other.
    assert_complaint(result, expected, blames, prefix)
    assert result.recap(host.name)["changed"] == 0
    assert host.sh(FINGERPRINT).stdout == fingerprint


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"haproxy_frontend_port": 70000}, "haproxy_frontend_port: 70000 is outside 1-65535"),
        ({"haproxy_stats_port": 0}, "haproxy_stats_port: 0 is outside 1-65535"),
        (
            {"haproxy_stats_port": "eighty"},
            "argument 'haproxy_stats_port' is of type str and we were unable to convert",
        ),
        (
            {"haproxy_stats_port": 8080},
            "haproxy_stats_port: got 8080, expected a port other than haproxy_frontend_port=8080",
        ),
        # As -e haproxy_stats_port=8080 gives it: a string, still the frontend's port.
        (
            {"haproxy_stats_port": "8080"},
            "haproxy_stats_port: got '8080', expected a port other than haproxy_frontend_port=8080",
        ),
        (
            {"haproxy_backend_name": "my app"},
            "haproxy_backend_name: got 'my app', expected an HAProxy proxy name (letters, digits and . _ - or colons)",
        ),
        (
            {"haproxy_frontend_name": "stats"},
            "haproxy_frontend_name: got 'stats', expected a name other than stats (the stats frontend)",
        ),
        ({"haproxy_backend_servers": []}, "haproxy_backend_servers is empty"),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "10.0.0.1"}]},
            "missing required arguments: port found in haproxy_backend_servers",
        ),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "10.0.0.1", "port": 0}]},
            "Bad app server: haproxy_backend_servers[0].port: 0 is outside 1-65535.",
        ),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "a b", "port": 8000}]},
            "Bad app server: haproxy_backend_servers[0].address: got 'a b', expected an IP address or host name.",
        ),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "10.0.0.1", "port": 8000}] * 2},
            "haproxy_backend_servers has duplicate names: app1, app1",
        ),
        (
            {"haproxy_timeout_client": "10 parsecs"},
            "haproxy_timeout_client: got '10 parsecs', expected an HAProxy time such as 500ms, 5s or 1m",
        ),
        ({"haproxy_balance": "random-ish"}, "value of haproxy_balance must be one of: roundrobin"),
        ({"haproxy_bind_address": ""}, "haproxy_bind_address: got '', expected an address of this host"),
        (
            {"haproxy_health_check_path": "healthz"},
            "haproxy_health_check_path: got 'healthz', expected a path starting",
        ),
        ({"haproxy_retries": -1}, "haproxy_retries: got -1, expected at least 0"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_lb_variable_fails_before_any_change(fresh_host, fingerprint_before, tmp_path, override, expected):
    lb = as_member(fresh_host, tmp_path, "lb")
    result = lb.playbook("playbooks/lb.yml", {**GOOD_LB, **override})
    # Comparing two ports (or names) names both; the complaint is about the one given.
    blames = set(override) | ({"haproxy_frontend_port"} if "other than haproxy_frontend_port" in expected else set())
    blames |= {"haproxy_backend_name"} if "other than stats" in expected else set()
    assert_failed_before_any_change(lb, result, expected, fingerprint_before, blames, "haproxy_")


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (("lb",), "is in group lb but in no cell group"),
        (("lb", "cell_a"), "in cell_a has no app servers to balance"),
    ],
    ids=["lb-in-no-cell", "cell-without-app-servers"],
)
def test_lb_without_app_servers_in_its_cell_fails_before_any_change(
    fresh_host, fingerprint_before, tmp_path, groups, expected
):
    """The wiring in group_vars/lb.yml, not an override, finds no backends."""
    lb = as_member(fresh_host, tmp_path, *groups)
    result = lb.playbook("playbooks/lb.yml")
    # The inventory is wrong, not a variable: the message names the host and the cell.
    assert_failed_before_any_change(lb, result, expected, fingerprint_before, set(), "haproxy_")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"nginx_listen_port": 0}, "nginx_listen_port: 0 is outside 1-65535"),
        ({"nginx_listen_port": "http"}, "argument 'nginx_listen_port' is of type str and we were unable to convert"),
        ({"nginx_upstream_port": 70000}, "nginx_upstream_port: 70000 is outside 1-65535"),
        ({"nginx_upstream_host": ""}, "nginx_upstream_host= is not an address or host name"),
        ({"nginx_upstream_host": "lb1; evil"}, "nginx_upstream_host=lb1; evil is not an address"),
        (
            {"nginx_proxy_read_timeout": "forever"},
            "nginx_proxy_read_timeout: got 'forever', expected an nginx time such as 500ms, 5s or 1m",
        ),
        ({"nginx_client_max_body_size": "huge"}, "nginx_client_max_body_size: got 'huge', expected a size such as 1m"),
        ({"nginx_frame_options": "ALLOWALL"}, "value of nginx_frame_options must be one of: DENY, SAMEORIGIN"),
        (
            {"nginx_health_path": "nginx-health"},
            "nginx_health_path: got 'nginx-health', expected a path starting with /",
        ),
        ({"nginx_worker_connections": 8}, "nginx_worker_connections: got 8, expected at least 16"),
        ({"nginx_content_security_policy": 'default-src "self"'}, "nginx_content_security_policy must be one line"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_web_variable_fails_before_any_change(fresh_host, fingerprint_before, tmp_path, override, expected):
    web = as_member(fresh_host, tmp_path, "web")
    result = web.playbook("playbooks/web.yml", {**GOOD_WEB, **override})
    assert_failed_before_any_change(web, result, expected, fingerprint_before, set(override), "nginx_")


def test_web_server_whose_cell_has_no_lb_fails_before_any_change(fresh_host, fingerprint_before, tmp_path):
    web = as_member(fresh_host, tmp_path, "web", "cell_a")
    result = web.playbook("playbooks/web.yml")
    assert_failed_before_any_change(web, result, "in cell_a has no LB to proxy to", fingerprint_before, set(), "nginx_")


@pytest.mark.parametrize(
    ("playbook", "group", "good"),
    [("playbooks/lb.yml", "lb", GOOD_LB), ("playbooks/web.yml", "web", GOOD_WEB)],
    ids=["lb", "web"],
)
def test_good_variables_pass_and_check_mode_reports_drift_on_a_fresh_host(
    fresh_host, fingerprint_before, tmp_path, playbook, group, good
):
    """The control case: the same run with good values gets through preflight, and
    check mode on a never-converged host reports the drift without failing."""
    host = as_member(fresh_host, tmp_path, group)
    result = host.playbook(playbook, good, "--check")
    assert result.rc == 0, result.output
    recap = result.recap(host.name)
    assert recap["failed"] == 0
    assert recap["changed"] > 0
    assert host.sh(FINGERPRINT).stdout == fingerprint_before
