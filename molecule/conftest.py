"""Helpers shared by every molecule scenario's testinfra tests."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from scripts.recap import parse_recap


def _run_converge_in_check_mode() -> tuple[dict[str, dict[str, int]], str]:
    """Run this scenario's converge playbook with --check --diff; return the recap and the output."""
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    # molecule forces colour for its own runs; the recap is parsed, so none here.
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    proc = subprocess.run(
        [
            "ansible-playbook",
            "--check",
            "--diff",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(scenario, "converge.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return parse_recap(proc.stdout), proc.stdout


@pytest.fixture(scope="session")
def check_mode_stats():
    """(recap per host, output) of a check run of converge.yml on the converged hosts."""
    return _run_converge_in_check_mode()


@pytest.fixture(scope="session")
def fleet_ports() -> dict[str, int]:
    """The fleet_port_* settings of this scenario's inventory, without the prefix ({"app": ..., ...}).

    The inventory links the top-level group_vars (.config/molecule/config.yml), so these
    are the ports of group_vars/all/fleet.yml that prepare.yml and converge.yml used:
    a test takes its ports from here, never from a literal of its own.
    """
    proc = subprocess.run(
        ["ansible-inventory", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--list"],
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    prefix = "fleet_port_"
    per_host = {
        host: {name.removeprefix(prefix): value for name, value in hvars.items() if name.startswith(prefix)}
        for host, hvars in hostvars.items()
    }
    ports = next(iter(per_host.values()), {})
    # Group all: one value per port for every host, and a number, not a template.
    assert ports, per_host
    assert all(other == ports for other in per_host.values()), per_host
    assert all(type(value) is int for value in ports.values()), ports
    return ports
