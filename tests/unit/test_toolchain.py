"""The pinned toolchain is what the project says it is."""

from __future__ import annotations

import configparser
import json
import re
import zipfile
from importlib import metadata

import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion

from scripts.toolchain import collections_wheel, runtime_lock
from tests.conftest import ROOT, run

LOCK = {
    m["name"].lower(): m["version"]
    for m in (
        re.match(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+)$", line)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    if m
}


def _requirement_lines(name: str) -> list[str]:
    return [line for line in (ROOT / name).read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_every_locked_line_is_an_exact_pin():
    lines = _requirement_lines("requirements.txt")
    assert len(lines) == len(LOCK), [line for line in lines if "==" not in line]


@pytest.mark.parametrize("line", _requirement_lines("requirements.in"))
def test_top_level_requirements_are_locked_at_the_same_version(line):
    name, version = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]+\])?==(\S+)$", line).groups()
    assert LOCK.get(name.lower()) == version


@pytest.mark.parametrize(
    "name", ["ansible", "ansible-core", "boto3", "botocore", "molecule", "pytest-testinfra", "jinja2"]
)
def test_installed_versions_match_the_lock(name):
    assert metadata.version(name) == LOCK[name]


def test_ansible_core_is_2_19_and_bundle_is_12():
    assert LOCK["ansible-core"].startswith("2.19.")
    assert LOCK["ansible"].startswith("12.")


def test_every_required_collection_ships_in_the_bundle():
    wanted = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    proc = run(["ansible-galaxy", "collection", "list", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    installed: dict[str, str] = {}
    for collections in json.loads(proc.stdout).values():
        for name, info in collections.items():
            installed.setdefault(name, info["version"])
    for collection in wanted:
        name = collection["name"]
        assert name in installed, f"{name} is not in the ansible bundle"
        for clause in collection["version"].split(","):
            op, bound = re.match(r"^(>=|<|==)(.+)$", clause).groups()
            have, limit = LooseVersion(installed[name]), LooseVersion(bound)
            ok = {">=": have >= limit, "<": have < limit, "==": have == limit}[op]
            assert ok, f"{name} {installed[name]} does not satisfy {clause}"


def test_ansible_cfg_is_what_operators_need():
    proc = run(["ansible-config", "dump", "--only-changed", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    settings = {item["name"]: item["value"] for item in json.loads(proc.stdout) if "name" in item}
    assert settings["DEFAULT_FORKS"] >= 20
    assert settings["RETRY_FILES_ENABLED"] is False
    assert settings["CACHE_PLUGIN"] == "jsonfile"
    assert settings["DEFAULT_GATHERING"] == "smart"
    assert "ansible.posix.profile_tasks" in settings["CALLBACKS_ENABLED"]
    assert settings["DEFAULT_ROLES_PATH"] == [str(ROOT / "roles")]
    proc = run(["ansible-config", "dump", "--only-changed", "-t", "connection", "--format", "json"])
    plugins = {name: opts for entry in json.loads(proc.stdout) for name, opts in entry.items()}
    ssh = {item["name"]: item["value"] for item in plugins["ssh"]}
    assert ssh["pipelining"] is True
    # In [connection], not [ssh_connection]: the docker connection of the container and
    # molecule tests reads only that section (ansible-config cannot dump collection plugins).
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    assert cfg.getboolean("connection", "pipelining")
    assert not cfg.has_option("ssh_connection", "pipelining")
    assert "ControlPersist" in ssh["ssh_args"]


# --- What a drift control host runs (scripts/toolchain.py) ---------------------------


def test_runtime_lock_is_the_closure_of_requirements_runtime_in_at_the_locks_pins():
    assert _requirement_lines("requirements-runtime.txt") == runtime_lock()
    assert {line.split("==")[0].lower() for line in runtime_lock()} >= {"ansible-core", "boto3", "mitogen"}
    # No test tool and not the 473 MB bundle: the collections come as their own wheel.
    assert {"ansible", "molecule", "ansible-lint", "moto", "pytest"}.isdisjoint(
        line.split("==")[0].lower() for line in runtime_lock()
    )


def test_collections_wheel_holds_every_required_collection_and_what_it_depends_on(tmp_path):
    pin = collections_wheel(tmp_path)
    assert pin == f"fleet-collections=={LOCK['ansible']}"
    wheel = tmp_path / f"fleet_collections-{LOCK['ansible']}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        record = whl.read(f"fleet_collections-{LOCK['ansible']}.dist-info/RECORD").decode()
    shipped = {"/".join(n.split("/")[1:3]).replace("/", ".") for n in names if n.startswith("ansible_collections/")}
    wanted = {c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    # community.docker's inventory needs community.library_inventory_filtering_v1.
    assert shipped == wanted | {"community.library_inventory_filtering_v1"}
    assert "ansible_collections/amazon/aws/MANIFEST.json" in names
    assert not [n for n in names if "__pycache__" in n]
    assert len(record.splitlines()) == len(names)
    # The same bundle gives the same bytes: the toolchain is built once per lock.
    first = wheel.read_bytes()
    collections_wheel(tmp_path)
    assert wheel.read_bytes() == first
