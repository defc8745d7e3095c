"""The top-level group_vars/ apply to every inventory and every playbook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run

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
