"""Bad variables for roles haproxy and nginx fail before any change, naming the variable.

One never-converged container serves both roles: it is put into group lb for
playbooks/lb.yml and into group web for playbooks/web.yml (a Container is only a
name and the groups its inventory puts it in). That a bad template never replaces a
working configuration is tested on converged hosts in the molecule scenarios
(molecule/haproxy, molecule/nginx: test_config_that_fails_validation_...).
"""

from __future__ import annotations

import pytest

from tests.containers.conftest import Container

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


def assert_failed_before_any_change(host: Container, result, expected: str, fingerprint: str) -> None:
    assert result.rc != 0, result.output
    assert expected in result.output, result.output
    assert result.recap(host.name)["changed"] == 0
    assert host.sh(FINGERPRINT).stdout == fingerprint


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"haproxy_frontend_port": 70000}, "haproxy_frontend_port: 70000 is outside 1-65535"),
        ({"haproxy_stats_port": 0}, "haproxy_stats_port: 0 is outside 1-65535"),
        ({"haproxy_stats_port": "eighty"}, "haproxy_stats_port"),
        ({"haproxy_stats_port": 8080}, "must differ from haproxy_frontend_port=8080"),
        ({"haproxy_backend_servers": []}, "haproxy_backend_servers is empty"),
        ({"haproxy_backend_servers": [{"name": "app1", "address": "10.0.0.1"}]}, "haproxy_backend_servers"),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "10.0.0.1", "port": 0}]},
            "haproxy_backend_servers[0] is bad: name=app1 (letters, digits, . _ -); address=10.0.0.1",
        ),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "a b", "port": 8000}]},
            "haproxy_backend_servers[0] is bad",
        ),
        (
            {"haproxy_backend_servers": [{"name": "app1", "address": "10.0.0.1", "port": 8000}] * 2},
            "haproxy_backend_servers has duplicate names: app1, app1",
        ),
        ({"haproxy_timeout_client": "10 parsecs"}, "(such as 500ms, 5s, 1m): haproxy_timeout_client"),
        ({"haproxy_balance": "random-ish"}, "haproxy_balance"),
        ({"haproxy_bind_address": ""}, "haproxy_bind_address= (an address of this host"),
        ({"haproxy_health_check_path": "healthz"}, "haproxy_health_check_path=healthz"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_lb_variable_fails_before_any_change(fresh_host, fingerprint_before, tmp_path, override, expected):
    lb = as_member(fresh_host, tmp_path, "lb")
    result = lb.playbook("playbooks/lb.yml", {**GOOD_LB, **override})
    assert_failed_before_any_change(lb, result, expected, fingerprint_before)


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
    """The wiring in group_vars/all/lb.yml, not an override, finds no backends."""
    lb = as_member(fresh_host, tmp_path, *groups)
    result = lb.playbook("playbooks/lb.yml")
    assert_failed_before_any_change(lb, result, expected, fingerprint_before)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"nginx_listen_port": 0}, "nginx_listen_port: 0 is outside 1-65535"),
        ({"nginx_listen_port": "http"}, "nginx_listen_port"),
        ({"nginx_upstream_port": 70000}, "nginx_upstream_port: 70000 is outside 1-65535"),
        ({"nginx_upstream_host": ""}, "nginx_upstream_host= is not an address or host name"),
        ({"nginx_upstream_host": "lb1; evil"}, "nginx_upstream_host=lb1; evil is not an address"),
        ({"nginx_proxy_read_timeout": "forever"}, "(such as 500ms, 5s, 1m): nginx_proxy_read_timeout"),
        ({"nginx_client_max_body_size": "huge"}, "nginx_client_max_body_size=huge"),
        ({"nginx_frame_options": "ALLOWALL"}, "nginx_frame_options"),
        ({"nginx_health_path": "nginx-health"}, "nginx_health_path=nginx-health"),
        ({"nginx_content_security_policy": 'default-src "self"'}, "nginx_content_security_policy must be one line"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_web_variable_fails_before_any_change(fresh_host, fingerprint_before, tmp_path, override, expected):
    web = as_member(fresh_host, tmp_path, "web")
    result = web.playbook("playbooks/web.yml", {**GOOD_WEB, **override})
    assert_failed_before_any_change(web, result, expected, fingerprint_before)


def test_web_server_whose_cell_has_no_lb_fails_before_any_change(fresh_host, fingerprint_before, tmp_path):
    web = as_member(fresh_host, tmp_path, "web", "cell_a")
    result = web.playbook("playbooks/web.yml")
    assert_failed_before_any_change(web, result, "in cell_a has no LB to proxy to", fingerprint_before)


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
