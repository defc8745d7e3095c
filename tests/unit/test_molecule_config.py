"""Molecule's scenarios run on Mitogen for real: the strategy is only half of it.

Mitogen's strategy takes over a connection only under the names it knows. The docker
driver names its connection community.docker.docker, which is not one of them: under
that name every task was still a docker exec starting a fresh Python, and the strategy
bought nothing (the molecule step took 1,334 s; 841 s once the connection was `docker`)."""

from __future__ import annotations

import yaml
from ansible_mitogen.strategy import REDIRECTED_CONNECTION_PLUGINS
from molecule_plugins.docker.driver import Docker

from tests.conftest import ROOT

SHARED = ROOT / ".config" / "molecule" / "config.yml"


def test_molecule_runs_mitogen_over_a_connection_mitogen_takes_over():
    provisioner = yaml.safe_load(SHARED.read_text())["provisioner"]
    assert provisioner["config_options"]["defaults"]["strategy"] == "mitogen_linear"
    assert provisioner["connection_options"]["ansible_connection"] in REDIRECTED_CONNECTION_PLUGINS


def test_the_drivers_own_connection_name_is_one_mitogen_would_not_take_over():
    # Why the shared config names the connection: without it, the driver's name wins.
    driver_default = Docker.ansible_connection_options(object.__new__(Docker), "instance")["ansible_connection"]
    assert driver_default not in REDIRECTED_CONNECTION_PLUGINS


def test_no_scenario_puts_the_drivers_connection_back():
    for scenario in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        provisioner = (yaml.safe_load(scenario.read_text()) or {}).get("provisioner") or {}
        assert "connection_options" not in provisioner, scenario
