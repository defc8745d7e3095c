"""End-to-end tests over the running lab (bin/fleet lab up)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
import testinfra

from tests.conftest import ROOT, plain, run

ELB = f"http://127.0.0.1:{os.environ.get('FLEET_LAB_ELB_PORT', '8088')}"
INVENTORY = ROOT / "inventories" / "lab"


def _inventory() -> dict:
    proc = run(["ansible-inventory", "-i", str(INVENTORY), "--list"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def lab_inventory() -> dict:
    inv = _inventory()
    if not inv.get("web", {}).get("hosts"):
        pytest.fail("the lab is not up: run bin/fleet lab up first")
    return inv


@pytest.fixture(scope="session")
def groups(lab_inventory) -> dict[str, list[str]]:
    return {name: sorted(body.get("hosts", [])) for name, body in lab_inventory.items() if isinstance(body, dict)}


@pytest.fixture(scope="session")
def hostvars(lab_inventory) -> dict[str, dict]:
    return plain(lab_inventory["_meta"]["hostvars"])


@pytest.fixture(scope="session")
def host() -> Callable[[str], testinfra.host.Host]:
    """A testinfra host reached through the lab inventory (SSH, as Ansible does)."""
    cache: dict[str, testinfra.host.Host] = {}
    os.environ["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")

    def get(name: str) -> testinfra.host.Host:
        if name not in cache:
            cache[name] = testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)
        return cache[name]

    return get


def http(method: str, url: str, body: dict | None = None, timeout: float = 5) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read().decode()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        return 0, str(err)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Freezer:
    """Freezes lab hosts: a dead server that keeps its address and comes back as it was."""

    def __init__(self) -> None:
        self.frozen: set[str] = set()

    def pause(self, name: str) -> None:
        subprocess.run(["docker", "pause", name], check=True, capture_output=True)
        self.frozen.add(name)

    def unpause(self, name: str) -> None:
        subprocess.run(["docker", "unpause", name], check=True, capture_output=True)
        self.frozen.discard(name)


@pytest.fixture
def freezer() -> Iterator[Freezer]:
    """Always thaws what a test froze, whatever the test's outcome."""
    f = Freezer()
    yield f
    for name in list(f.frozen):
        f.unpause(name)
