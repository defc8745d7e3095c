"""The AWX / AAP execution environment: pinned like the controller, and ansible-builder renders it."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, run
from tests.unit.test_toolchain import LOCK

EE = yaml.safe_load((ROOT / "execution-environment.yml").read_text())


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.split():
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            found[m.group(1).lower()] = m.group(2)
    return found


def test_the_ee_installs_core_and_runner_at_the_locked_versions():
    deps = EE["dependencies"]
    assert pins(deps["ansible_core"]["package_pip"]) == {"ansible-core": LOCK["ansible-core"]}
    assert pins(deps["ansible_runner"]["package_pip"]) == {"ansible-runner": LOCK["ansible-runner"]}


def test_every_python_package_of_the_ee_is_pinned_as_in_the_lock():
    lines = [
        line
        for line in (ROOT / EE["dependencies"]["python"]).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    found = pins(" ".join(lines))
    assert len(found) == len(lines), "every line must be an exact pin"
    assert {name: LOCK.get(name) for name in found} == found
    # What the playbooks need at run time: the collections bundle, AWS SDK, Mitogen.
    assert {"ansible", "boto3", "botocore", "mitogen"} <= set(found)


@pytest.mark.parametrize("section", ["python", "system"])
def test_referenced_files_exist(section):
    assert (ROOT / EE["dependencies"][section]).is_file()


def test_ansible_builder_renders_the_build_context(tmp_path):
    proc = run(
        [
            "ansible-builder",
            "create",
            "-f",
            str(ROOT / "execution-environment.yml"),
            "--context",
            str(tmp_path),
            "--output-filename",
            "Containerfile",
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (tmp_path / "Containerfile").read_text()
    assert f"ansible-core=={LOCK['ansible-core']}" in containerfile
    assert f"ansible-runner=={LOCK['ansible-runner']}" in containerfile
    assert "ENV FLEET_DRIFT_DIR=/runner/artifacts/drift" in containerfile
    shipped = pins((tmp_path / "_build" / "requirements.txt").read_text())
    assert shipped["ansible"] == LOCK["ansible"]
    assert "openssh-clients" in (tmp_path / "_build" / "bindep.txt").read_text()
