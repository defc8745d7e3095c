"""Shared by every pytest suite of fleet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The tier and cell groups of the two cells of ../shared/ARCHITECTURE.md, as the
# lab's inventory (and the AWS one) makes them; the ELB stand-in is `elb`.
TWO_CELL_GROUPS: dict[str, list[str]] = {
    "elb": ["elb"],
    "web": ["web1", "web2", "web3", "web4"],
    "lb": ["lb1", "lb2"],
    "app": ["app1", "app2", "app3", "app4"],
    "db": ["primary", "replica1", "replica2"],
    "db_primary": ["primary"],
    "db_replicas": ["replica1", "replica2"],
    "cell_a": ["web1", "web2", "lb1", "app1", "app2", "replica1"],
    "cell_b": ["web3", "web4", "lb2", "app3", "app4", "replica2"],
}


def ansible_env(**extra: str) -> dict[str, str]:
    """The environment an operator has: fleet's ansible.cfg, no colour."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    # The toolchain of the interpreter running the tests, even when .venv is not on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=ansible_env(**env), capture_output=True, text=True, check=False)


def rendered(inventory: Path | str, pattern: str, name: str, **env: str) -> dict[str, object]:
    """``{host: value}`` of variable ``name`` as Ansible renders it for each host of
    ``pattern`` in ``inventory`` (group_vars, templates and all; role defaults are not
    inventory variables). Ad hoc ``debug`` talks to no host; an undefined one fails."""
    cmd = ["ansible", pattern, "-i", str(inventory), "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {name} }}}}"]
    proc = run(cmd, ANSIBLE_CALLBACK_RESULT_FORMAT="json", **env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = re.finditer(r"^(\S+) \| SUCCESS => (\{.*?^\})$", proc.stdout, re.M | re.S)
    return {host: json.loads(body)["msg"] for host, body in (m.groups() for m in results)}


def plain(value: object) -> object:
    """ansible-inventory marks some values unsafe, as {"__ansible_unsafe": "..."}: unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@pytest.fixture
def root() -> Path:
    return ROOT
