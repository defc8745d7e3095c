"""The top-level group_vars/ apply to every inventory and every playbook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, plain, rendered, run

FLEET_VARS = yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text())


@pytest.fixture
def foreign_inventory(tmp_path: Path) -> Path:
    """An inventory far from the repo, with no group_vars of its own."""
    inv = tmp_path / "elsewhere" / "hosts.yml"
    inv.parent.mkdir()
    inv.write_text("all:\n  children:\n    web:\n      hosts:\n        web9:\n          ansible_connection: local\n")
    return inv


def test_fleet_vars_define_every_port_once():
    ports = {k: v for k, v in FLEET_VARS.items() if k.startswith("fleet_port_")}
    assert set(ports) >= {"fleet_port_ssh", "fleet_port_http", "fleet_port_app", "fleet_port_postgres"}
    assert all(isinstance(v, int) and 0 < v < 65536 for v in ports.values())


@pytest.mark.parametrize("cwd", [ROOT, Path("/")], ids=["from-repo", "from-elsewhere"])
def test_ad_hoc_tools_load_top_level_group_vars(foreign_inventory, cwd):
    proc = run(["ansible-inventory", "-i", str(foreign_inventory), "--host", "web9"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    hostvars = json.loads(proc.stdout)
    assert hostvars["fleet_port_app"] == FLEET_VARS["fleet_port_app"]
    # Role variables are wired to the shared ones through group_vars too.
    assert hostvars["base_sshd_port"] == "{{ fleet_port_ssh }}"


def test_playbooks_load_top_level_group_vars(foreign_inventory):
    proc = run(["ansible-playbook", "-i", str(foreign_inventory), str(ROOT / "playbooks" / "topology.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"app: {FLEET_VARS['fleet_port_app']}" in proc.stdout
    assert "- web9" in proc.stdout


def test_playbook_group_vars_are_the_top_level_ones():
    link = ROOT / "playbooks" / "group_vars"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "group_vars").resolve()


def test_molecule_scenarios_link_top_level_group_vars():
    base = yaml.safe_load((ROOT / ".config" / "molecule" / "config.yml").read_text())
    assert base["provisioner"]["inventory"]["links"]["group_vars"] == "${MOLECULE_PROJECT_DIRECTORY}/group_vars"


SYNTAX_INVENTORY = ROOT / "tests" / "syntax-inventory.yml"
# What the haproxy role needs from group_vars on every host it runs on.
HAPROXY_WIRING = (
    "haproxy_frontend_port",
    "haproxy_stats_port",
    "haproxy_backend_servers",
    "haproxy_admin_socket",
    "haproxy_backend_name",
    "haproxy_health_check_path",
    "haproxy_timeout_connect",
)


@pytest.fixture(scope="module")
def syntax_hostvars() -> dict[str, dict]:
    """Every host's variables from the syntax inventory (templates not rendered)."""
    proc = run(["ansible-inventory", "-i", str(SYNTAX_INVENTORY), "--list"])
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout)["_meta"]["hostvars"])


def haproxy_settings(hostvars: dict) -> set[str]:
    return {name for name in hostvars if name.startswith("haproxy_")}


def test_nginx_settings_reach_only_the_web_servers(syntax_hostvars):
    """group_vars/web.yml, not group_vars/all/: only a web server carries nginx_* (its
    upstream, the LB of its cell, means nothing elsewhere)."""
    web = {host for host in syntax_hostvars if host.startswith("web")}
    assert web
    for host, hostvars in syntax_hostvars.items():
        nginx = {name for name in hostvars if name.startswith("nginx_")}
        assert bool(nginx) == (host in web), (host, sorted(nginx))
        if host in web:
            assert {"nginx_listen_port", "nginx_upstream_port", "nginx_upstream_host"} <= nginx, host


def test_haproxy_settings_reach_only_the_lbs_and_the_elb_stand_in(syntax_hostvars):
    """group_vars/lb.yml and group_vars/elb.yml, not group_vars/all/: a web, app or db host
    carries no haproxy_* variable (no LB wiring evaluated, or shown, where it means nothing)."""
    haproxy_hosts = {"lb1", "lb2", "elb1"}
    for host, hostvars in syntax_hostvars.items():
        if host in haproxy_hosts:
            assert set(HAPROXY_WIRING) <= haproxy_settings(hostvars), host
        else:
            assert haproxy_settings(hostvars) == set(), host


def test_the_elb_stand_in_gets_what_the_lbs_got_for_what_it_shares():
    """The ELB stand-in (group elb) is the haproxy role too: it keeps the LBs' stats port,
    admin socket and connect timeout, with its own frontend, backend and checks. What
    group_vars leave unset is the role's default ('' here)."""
    names = (*HAPROXY_WIRING, "haproxy_frontend_name", "haproxy_health_check_inter", "haproxy_timeout_check")
    expression = f"query('ansible.builtin.vars', {', '.join(map(repr, names))}, default='')"
    got = rendered(SYNTAX_INVENTORY, "lb1:elb1", expression)
    lb, elb = (dict(zip(names, got[host], strict=True)) for host in ("lb1", "elb1"))
    for shared in ("haproxy_stats_port", "haproxy_admin_socket", "haproxy_timeout_connect"):
        assert elb[shared] == lb[shared] != "", shared
    assert elb["haproxy_stats_port"] == FLEET_VARS["fleet_port_lb_stats"]
    assert elb["haproxy_admin_socket"] == FLEET_VARS["fleet_lb_admin_socket"]
    assert elb["haproxy_frontend_port"] == FLEET_VARS["fleet_port_http"]
    assert elb["haproxy_backend_servers"] == [
        {"name": web, "address": web, "port": FLEET_VARS["fleet_port_http"]} for web in ("web1", "web2", "web3", "web4")
    ]
    assert (elb["haproxy_frontend_name"], elb["haproxy_backend_name"]) == ("clients", "web")
    assert (elb["haproxy_health_check_inter"], elb["haproxy_timeout_check"]) == ("1s", "1s")
    # The LBs keep the names they always had: the role's default frontend, and the
    # backend the app servers drain in.
    defaults = yaml.safe_load((ROOT / "roles" / "haproxy" / "defaults" / "main.yml").read_text())
    assert (lb["haproxy_frontend_name"], defaults["haproxy_frontend_name"]) == ("", "web")
    assert lb["haproxy_backend_name"] == FLEET_VARS["fleet_lb_backend"] == defaults["haproxy_backend_name"] == "app"


def test_app_servers_drain_in_the_backend_the_lbs_name():
    lbs = rendered(SYNTAX_INVENTORY, "lb", "haproxy_backend_name")
    apps = rendered(SYNTAX_INVENTORY, "app", "app_lb_backend")
    assert set(lbs.values()) == set(apps.values()) == {FLEET_VARS["fleet_lb_backend"]}


@pytest.mark.parametrize(("environment", "allowed"), [("production", "false"), ("lab", "true")])
def test_ssh_from_everyone_is_allowed_only_outside_production(foreign_inventory, environment, allowed):
    show = ["-m", "ansible.builtin.debug", "-a", "var=firewall_ssh_open_allowed"]
    proc = run(["ansible", "web9", "-i", str(foreign_inventory), *show, "-e", f"fleet_environment={environment}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"firewall_ssh_open_allowed: {allowed}" in proc.stdout


@pytest.mark.parametrize(("previous", "protected"), [(None, " []"), ("", " []"), ("1.1.1", "\n    - 1.1.1")])
def test_the_recorded_rollback_target_is_protected_from_pruning(foreign_inventory, previous, protected):
    """The release an inventory records as the one before (what `bin/fleet deploy --rollback`
    runs, shipping nothing) is among the releases the app role never removes."""
    show = ["-m", "ansible.builtin.debug", "-a", "var=app_releases_protected"]
    extra = [] if previous is None else ["-e", json.dumps({"fleet_release_previous": previous})]
    proc = run(["ansible", "web9", "-i", str(foreign_inventory), *show, *extra])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"app_releases_protected:{protected}\n" in proc.stdout, proc.stdout
