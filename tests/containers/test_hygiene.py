"""bin/fleet test starts by removing what fleet itself left on the machine, and
nothing else (issue 27 item 2). The leftovers are planted the way an interrupted
run leaves them: a lab host and a molecule instance, stopped, with their
networks, and the same for somebody else's project. This module runs first in
the containers step (conftest.py), before any container of that step exists."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest

from scripts import hygiene
from scripts.lab import LABEL as LAB_LABEL
from scripts.lab import NETWORK as LAB_NETWORK
from scripts.lab import Host
from tests.conftest import ROOT
from tests.containers.conftest import IMAGE


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def exists(kind: str, name: str) -> bool:
    return docker(*(["container"] if kind == "container" else [kind]), "inspect", name).returncode == 0


def plant(name: str, network: str, labels: list[str]) -> None:
    """A container that ran on its network and was stopped, as a killed run leaves it."""
    flags = [arg for label in labels for arg in ("--label", label)]
    assert docker("network", "create", *flags, network).returncode == 0
    run = docker("run", "-d", "--name", name, "--network", network, *flags, "--entrypoint", "sleep", IMAGE, "600")
    assert run.returncode == 0, run.stderr
    assert docker("stop", "-t", "0", name).returncode == 0


def test_the_labels_cleaned_are_the_ones_fleet_puts_on_its_containers():
    """hygiene.LABELS covers every place that starts a fleet container: a label
    added there and not here would leave that container behind."""
    create = (ROOT / "molecule" / "shared" / "create.yml").read_text()
    containers = (ROOT / "tests" / "containers" / "conftest.py").read_text()
    used = {
        LAB_LABEL.split("=")[0],
        *re.findall(r"__create_label: \"(fleet\.[a-z]+)=", create),
        *re.findall(r'"--label", "(fleet\.[a-z]+)=', containers),
    }
    assert used == set(hygiene.LABELS)


@pytest.fixture
def leftovers():
    if hygiene.labelled("container", hygiene.LABELS):
        pytest.fail(
            "a fleet container exists before this test (your lab? bin/fleet lab down first): "
            "the clean-up under test would remove it"
        )
    tag = uuid.uuid4().hex[:6]
    lab_host = Host("web1", "web", "a")
    # The names the lab and molecule's postgresql scenario use.
    ours = {"container": ["web1", "db-primary"], "network": [LAB_NETWORK, "fleet-postgresql"]}
    theirs = {
        "container": [f"other-{tag}-app", f"other-{tag}-instance"],
        "network": [f"other-{tag}-net", f"other-{tag}-molecule"],
    }
    plant(ours["container"][0], ours["network"][0], [f"{k}={v}" for k, v in lab_host.labels.items()])
    plant(ours["container"][1], ours["network"][1], ["owner=molecule", "fleet.molecule=postgresql"])
    # Somebody else's: no label at all, and another project's molecule instance
    # (molecule's generic owner label is not fleet's).
    plant(theirs["container"][0], theirs["network"][0], ["com.example.app=1"])
    plant(theirs["container"][1], theirs["network"][1], ["owner=molecule"])
    yield ours, theirs
    for kind in ("container", "network"):
        for name in ours[kind] + theirs[kind]:
            docker(*(["rm", "-f"] if kind == "container" else ["network", "rm"]), name)


def test_clean_removes_exactly_fleets_leftovers(leftovers):
    ours, theirs = leftovers
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.hygiene", "clean"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    for kind in ("container", "network"):
        for name in ours[kind]:
            assert not exists(kind, name), f"fleet's {kind} {name} survived the clean-up:\n{proc.stderr}"
            assert name in proc.stderr, f"the clean-up did not say it removed {name}:\n{proc.stderr}"
        for name in theirs[kind]:
            assert exists(kind, name), f"the clean-up removed {name}, which is not fleet's:\n{proc.stderr}"


def test_a_docker_that_does_not_answer_fails_the_run_at_once_saying_so():
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.hygiene", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert proc.returncode == 1
    assert "Docker does not answer" in proc.stderr, proc.stderr


def test_too_little_free_disk_fails_naming_the_figure():
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.hygiene", "disk", "--need-gb", "100000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "a whole run needs 100000 GB" in proc.stderr, proc.stderr
    ok = subprocess.run([sys.executable, "-m", "scripts.hygiene", "disk", "--need-gb", "1"], cwd=ROOT, check=False)
    assert ok.returncode == 0
