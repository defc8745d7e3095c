"""The flags that run systemd in a test-bed container exist once, in
testbed/systemd-flags.txt: the lab and tests/containers (scripts.lab.SYSTEMD_FLAGS)
and every molecule scenario (molecule/shared/create.yml) read that file."""

from __future__ import annotations

import subprocess

import yaml

from scripts.lab import SYSTEMD_FLAGS
from tests.conftest import ROOT

FLAGS_FILE = ROOT / "testbed" / "systemd-flags.txt"


def flags_in_file() -> list[str]:
    lines = (line.strip() for line in FLAGS_FILE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_file_holds_what_systemd_needs():
    flags = flags_in_file()
    assert "--cap-add=SYS_ADMIN" in flags
    assert "--cgroupns=host" in flags
    assert "--volume=/sys/fs/cgroup:/sys/fs/cgroup:ro" in flags
    assert all(flag.startswith("--") and " " not in flag for flag in flags), flags


def test_the_lab_and_the_container_tests_read_it():
    assert flags_in_file() == SYSTEMD_FLAGS


def test_molecule_creates_every_scenario_with_it():
    base = yaml.safe_load((ROOT / ".config" / "molecule" / "config.yml").read_text())
    create = base["provisioner"]["playbooks"]["create"]
    assert create == "${MOLECULE_PROJECT_DIRECTORY}/molecule/shared/create.yml"
    assert "/testbed/systemd-flags.txt" in (ROOT / "molecule" / "shared" / "create.yml").read_text()
    # No scenario brings a create of its own or systemd settings on a platform.
    for scenario in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        config = yaml.safe_load(scenario.read_text())
        assert "create" not in config.get("provisioner", {}).get("playbooks", {}), scenario
        for platform in config.get("platforms", []):
            assert set(platform) <= {"name", "groups", "networks"}, (scenario, platform)


def test_no_other_file_spells_the_flags_out():
    # Split so that this file does not match itself.
    marker = "seccomp" + "=unconfined"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    holders = [
        name for name in files if (ROOT / name).is_file() and marker in (ROOT / name).read_text(errors="replace")
    ]
    assert holders == ["testbed/systemd-flags.txt"]
