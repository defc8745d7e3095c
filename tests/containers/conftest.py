"""Throwaway systemd containers from the fleet test-bed image, for role tests
that are not molecule scenarios (bad input, guards)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from scripts.lab import SYSTEMD_FLAGS
from scripts.recap import parse_recap
from tests.conftest import ROOT, run

IMAGE = os.environ.get("FLEET_IMAGE", "fleet/debian12-systemd:latest")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_hygiene first: the clean-up it runs removes every fleet container,
    this step's own included, so it runs before any of them exists."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/containers/test_hygiene.py"))


@dataclass
class PlaybookResult:
    rc: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        recap = parse_recap(self.output)
        assert host in recap, f"no recap line for {host}:\n{self.output}"
        return recap[host]

    def failure_messages(self) -> list[str]:
        """The ``msg`` of every failed task (or loop item), from the YAML results of the default callback."""
        messages = []
        for match in re.finditer(
            r"^(?:fatal: \[[^\]]+\]: FAILED!|failed: \[[^\]]+\] \(item=.*\)) => *\n((?:    .*\n|\n)+)",
            self.output,
            re.M,
        ):
            result = yaml.safe_load(textwrap.dedent(match[1]))
            if isinstance(result, dict) and "censored" in result:
                # A no_log task's result is hidden; its error line still carries the message.
                errors = re.findall(
                    r"^\[ERROR\]: Task failed: Action failed: (.*?)\nOrigin:", self.output[: match.start()], re.M | re.S
                )
                messages.append(errors[-1] if errors else str(result))
            else:
                messages.append(str(result.get("msg", result)) if isinstance(result, dict) else str(result))
        return messages

    def failure(self) -> str:
        """The message of the one task that failed."""
        messages = self.failure_messages()
        assert len(messages) == 1, f"expected one failed task, got {messages}:\n{self.output}"
        return messages[0]


def blamed(message: str, prefix: str) -> set[str]:
    """The variables of a role (names starting with ``prefix``) a message names."""
    return set(re.findall(rf"(?<![A-Za-z0-9_]){prefix}[a-z0-9_]+", message))


def assert_complaint(result: PlaybookResult, expected: str, blames: set[str], prefix: str) -> None:
    """The run failed in one task whose message holds ``expected`` and names exactly
    the variables ``blames`` of the role, no other: a message that lists every
    variable would pass any case that looks only for a name."""
    assert result.rc != 0, result.output
    message = result.failure()
    assert expected in message, message
    assert blamed(message, prefix) == blames, message


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
