"""Helpers shared by every molecule scenario's testinfra tests."""

from __future__ import annotations

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
