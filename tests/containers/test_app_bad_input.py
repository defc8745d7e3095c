"""Bad variables for role app fail before any change, naming the variable."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.containers.conftest import Container, assert_complaint, start_container

pytestmark = pytest.mark.containers

# Everything the role needs, with the cell wiring given directly (this host is
# alone in its inventory: no primary, no replica for the filters to find).
GOOD = {
    "app_cell": "cell_a",
    "app_db_write_host": "primary",
    "app_db_read_host": "replica1",
    "app_db_write_password": "w",
    "app_db_read_password": "r",
    "app_release_version": "1.0.0",
    "app_release_url": "/nonexistent/fleet-app-1.0.0.tar.gz",
}
FINGERPRINT = "getent passwd fleet-app; ls -la /opt /etc/fleet-app 2>&1; dpkg -l python3-venv 2>&1 | tail -1"


@pytest.fixture(scope="module")
def app_host(tmp_path_factory) -> Iterator[Container]:
    """A never-converged Debian 12 host in groups app and cell_a, removed afterwards."""
    name = f"fleet-test-app-{uuid.uuid4().hex[:8]}"
    container = start_container(name, ("app", "cell_a"), tmp_path_factory.mktemp(name))
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def fingerprint_before(app_host):
    return app_host.sh(FINGERPRINT).stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"app_port": 70000}, "app_port: 70000 is outside 1-65535"),
        ({"app_port": 0}, "app_port: 0 is outside 1-65535"),
        ({"app_port": "http"}, "argument 'app_port' is of type str and we were unable to convert to int"),
        ({"app_db_port": 99999}, "app_db_port: 99999 is outside 1-65535"),
        ({"app_release_version": "1.0"}, "app_release_version: got '1.0', expected MAJOR.MINOR.PATCH such as 1.2.0"),
        ({"app_release_version": "v1.0.0"}, "app_release_version: got 'v1.0.0', expected MAJOR.MINOR.PATCH"),
        (
            {"app_release_url": "ftp://example.org/fleet-app-1.0.0.tar.gz"},
            "app_release_url: got 'ftp://example.org/fleet-app-1.0.0.tar.gz', expected an absolute controller path",
        ),
        ({"app_release_url": "releases/fleet-app-1.0.0.tar.gz"}, "app_release_url: got 'releases/fleet-app-1.0.0"),
        (
            {"app_release_url": "https://example.org/fleet-app-2.0.0.tar.gz"},
            "expected a path or URL ending in fleet-app-1.0.0.tar.gz",
        ),
        ({"app_release_url": "https://exa mple.org/fleet-app-1.0.0.tar.gz"}, "app_release_url: got 'https://exa mple"),
        ({"app_runtime": "node"}, "value of app_runtime must be one of: python, got: node"),
        ({"app_releases_keep": 1}, "app_releases_keep: got 1, expected at least 2"),
        ({"app_cell": "a"}, "app_cell: got 'a', expected a cell group such as cell_a"),
        # Rolling changes: checked in the plan, before any server is drained.
        ({"app_rollout_per_cell": 0}, "app_rollout_per_cell: a batch of 0 per cell does not fit cell_a"),
        ({"app_rollout_per_cell": 2}, "app_rollout_per_cell: a batch of 2 per cell does not fit cell_a"),
        ({"app_drain_timeout": 0}, "app_drain_timeout: got 0, expected at least 1"),
        ({"app_gate_timeout": -1}, "app_gate_timeout: got -1, expected at least 1"),
        ({"app_workers": "4"}, None),
        ({"app_db_connect_timeout": "1.5"}, None),
        (
            {"app_db_connect_timeout": 0},
            "app_db_connect_timeout: got 0, expected seconds, more than 0 and at most 60 (such as 1.5)",
        ),
        ({"app_db_connect_timeout": "soon"}, "argument 'app_db_connect_timeout' is of type str and we were unable"),
        ({"app_extra_env": {"GOOD": "1", "bad-name": "x"}}, "app_extra_env: got ['bad-name'], expected names of upper"),
        ({"app_db_write_password": ""}, "app_db_write_password: must be set (from vault) and be one line"),
        ({"app_db_read_password": "two\nlines"}, "app_db_read_password: must be set (from vault) and be one line"),
        ({}, "app_release_url=/nonexistent/fleet-app-1.0.0.tar.gz does not exist on the controller"),
    ],
    ids=lambda v: (next(iter(v)) if v else "missing-artifact") if isinstance(v, dict) else None,
)
def test_bad_variable_fails_before_any_change(app_host, fingerprint_before, override, expected):
    result = app_host.playbook("playbooks/app.yml", {**GOOD, **override})
    if expected is None:
        # A number given as a string (extra vars of the form key=value) is good:
        # preflight lets it through and the run stops only at the missing artifact.
        expected, override = "does not exist on the controller", {"app_release_url": None}
    # The complaint names the bad variable and no other (the artifact's own name
    # says which version it is for).
    blames = set(override) | ({"app_release_version"} if "ending in" in expected else set())
    assert_complaint(result, expected, blames or {"app_release_url"}, "app_")
    assert result.recap(app_host.name)["changed"] == 0
    assert app_host.sh(FINGERPRINT).stdout == fingerprint_before


def test_passwords_never_reach_the_output(app_host, fingerprint_before, tmp_path):
    """A check run with --diff and -v gets past preflight and renders every file
    the role writes, the secret-bearing environment file included, as a drift run
    does: the passwords appear nowhere in the output."""
    write_secret, read_secret = f"w-{uuid.uuid4().hex}", f"r-{uuid.uuid4().hex}"
    artifact = tmp_path / "fleet-app-1.0.0.tar.gz"
    artifact.write_bytes(b"")  # check mode only reports the copy; nothing is unpacked
    result = app_host.playbook(
        "playbooks/app.yml",
        {
            **GOOD,
            "app_release_url": str(artifact),
            "app_db_write_password": write_secret,
            "app_db_read_password": read_secret,
        },
        "--check",
        "--diff",
        "-v",
    )
    assert result.rc == 0, result.output
    # The environment file was rendered and would change (so its diff was computed),
    # and other templates' diffs are printed: this run shows content.
    env_task = re.search(
        r"TASK \[app : configure \| Write the app's environment file\].*?\n(changed|ok): ", result.output, re.S
    )
    assert env_task, result.output
    assert env_task[1] == "changed", result.output
    assert "+++ after: " in result.output, result.output
    assert write_secret not in result.output
    assert read_secret not in result.output
    assert app_host.sh(FINGERPRINT).stdout == fingerprint_before
