"""Throwaway systemd containers from the fleet test-bed image, for role tests
that are not molecule scenarios (bad input, guards)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.lab import SYSTEMD_FLAGS
from scripts.recap import parse_recap
from tests.conftest import ROOT, run

IMAGE = os.environ.get("FLEET_IMAGE", "fleet/debian12-systemd:latest")


@dataclass
class PlaybookResult:
    rc: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        recap = parse_recap(self.output)
        assert host in recap, f"no recap line for {host}:\n{self.output}"
        return recap[host]


@dataclass
class Container:
    name: str
    groups: tuple[str, ...]
    tmp: Path

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.name, "sh", "-c", script], capture_output=True, text=True, check=False
        )

    def inventory(self) -> Path:
        host = {
            self.name: {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
            }
        }
        inv = {"all": {"children": {group: {"hosts": host} for group in self.groups}}}
        path = self.tmp / "inventory.json"
        path.write_text(json.dumps(inv))
        return path

    def playbook(self, playbook: str, extra_vars: dict | None = None, *args: str) -> PlaybookResult:
        cmd = ["ansible-playbook", "-i", str(self.inventory()), str(ROOT / playbook), *args]
        if extra_vars is not None:
            vars_file = self.tmp / f"vars-{uuid.uuid4().hex}.json"
            vars_file.write_text(json.dumps(extra_vars))
            cmd += ["-e", f"@{vars_file}"]
        proc = run(cmd)
        return PlaybookResult(proc.returncode, proc.stdout + proc.stderr)


def _wait_for_systemd(name: str) -> None:
    for _ in range(60):
        state = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if state in {"running", "degraded"}:
            return
        time.sleep(0.5)
    raise AssertionError(f"systemd in {name} did not come up")


def start_container(name: str, groups: tuple[str, ...], tmp: Path) -> Container:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--hostname", name, "--label", "fleet.test=1", *SYSTEMD_FLAGS, IMAGE],
        capture_output=True,
        check=True,
    )
    _wait_for_systemd(name)
    return Container(name, groups, tmp)


@pytest.fixture(scope="module")
def fresh_host(tmp_path_factory) -> Iterator[Container]:
    """A never-converged Debian 12 host in every tier group, removed afterwards."""
    name = f"fleet-test-{uuid.uuid4().hex[:8]}"
    container = start_container(name, ("web",), tmp_path_factory.mktemp(name))
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
